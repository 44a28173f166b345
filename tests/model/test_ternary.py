"""Ternary weights: the convention's integer mapping and the ternary_dense layer kind."""

import numpy as np
import pytest

from bnnflow.model import artifact, conventions, golden
from bnnflow.model.random_net import random_model
from bnnflow.model.ternary import TernaryDenseLayer, read_ternary


def _pm1_dot(x_bits, signs, mask):
    """The dot product of +-1 inputs with weights in {-1, 0, +1}, computed the slow way."""
    w = np.where(mask == 1, np.where(signs == 1, 1, -1), 0)
    return conventions.bits_to_pm1(x_bits).astype(np.int64) @ w.T


@pytest.mark.parametrize(("k", "n", "seed"), [(1, 1, 0), (7, 3, 1), (64, 5, 2), (131, 9, 3)])
def test_live_popcount_gives_the_ternary_dot_product(k, n, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n, k))
    signs, mask = conventions.ternary_from_real(w, 0.7 * np.abs(w).mean(axis=1, keepdims=True))
    x = rng.integers(0, 2, size=(50, k), dtype=np.uint8)
    p = conventions.popcount_xnor_masked(x, signs, mask)
    dot = conventions.ternary_dot_from_popcount(p, mask.sum(axis=1))
    assert np.array_equal(dot, _pm1_dot(x, signs, mask))
    assert np.all((p >= 0) & (p <= mask.sum(axis=1)))


def test_ternary_from_real_zeroes_small_weights_and_keeps_signs():
    signs, mask = conventions.ternary_from_real(np.array([[-2.0, -0.1, 0.0, 0.3, 1.5]]), 0.5)
    assert mask.tolist() == [[1, 0, 0, 0, 1]]
    assert signs.tolist() == [[0, 0, 0, 0, 1]]


def test_masked_popcount_checks_shapes():
    with pytest.raises(ValueError, match=r"mask must have the weights' shape \(2, 3\)"):
        conventions.popcount_xnor_masked(np.zeros((1, 3)), np.zeros((2, 3)), np.zeros((2, 2)))


def _layer(**changes):
    base = {"name": "t0", "weights": np.array([[1, 0, 0], [0, 0, 1]]),
            "mask": np.array([[1, 1, 0], [0, 1, 1]]), "thresholds": np.array([[1], [2]])}
    base.update(changes)
    return TernaryDenseLayer(**base)


def test_layer_forward_is_the_convention():
    layer = _layer()
    x = np.array([[1, 0, 1], [0, 1, 0]], dtype=np.uint8)
    bits, counts = layer.forward(x)
    assert counts.tolist() == [[2, 2], [0, 0]]
    assert bits.tolist() == [[1, 1], [0, 0]]
    assert layer.live.tolist() == [2, 2] and layer.weight_bits == 2 and not layer.is_output


@pytest.mark.parametrize(("changes", "message"), [
    ({"weights": np.array([[1, 0, 1], [0, 0, 1]])}, "a sign bit is set where the mask is 0"),
    ({"mask": np.array([[1, 1], [0, 1]])}, "weights and mask must be \\(N, K\\) arrays"),
    ({"mask": np.array([[2, 1, 0], [0, 1, 1]])}, "mask must hold only 0 and 1"),
    ({"thresholds": None}, "needs thresholds; the output layer stays binary_dense"),
    ({"thresholds": np.array([[4], [1]])}, "outside \\[0, L\\*m \\+ 1\\] for its neuron's m "
                                           "live weights: neuron 0 has m = 2 \\(L = 1\\), "
                                           "threshold 4 not in 0..3$"),
    ({"thresholds": np.array([[2, 1], [1, 1]])}, "sorted ascending"),
])
def test_layer_refuses_bad_arrays(changes, message):
    with pytest.raises(ValueError, match=message):
        _layer(**changes)


def test_a_bad_mask_array_is_named_as_the_mask():
    # Both errors named the weights, which were fine.
    store = {"w": np.zeros((3, 1), np.uint8), "m": np.ones((3, 1), np.uint16),
             "t": np.zeros((3, 1), np.int64)}
    entry, arrays = {"weight_bits": 2, "activation_bits": 1}, {"weights": "w", "mask": "m",
                                                               "thresholds": "t"}
    with pytest.raises(ValueError, match=r"^L: mask must be uint8 of shape \(3, 1\) for 3 "
                                         r"neurons of 5 inputs, not uint16 \(3, 1\)$"):
        read_ternary(entry, arrays, store.__getitem__, "L", 5, 3)
    store["m"] = np.full((3, 1), 0xFF, np.uint8)
    with pytest.raises(ValueError, match=r"^L: mask has non-zero padding bits past input 5$"):
        read_ternary(entry, arrays, store.__getitem__, "L", 5, 3)


def test_artifact_round_trip_and_golden_model(tmp_path):
    model = random_model([17, 9, 6, 4], seed=4, ternary=True)
    assert [layer.kind for layer in model.layers] == ["ternary_dense", "ternary_dense",
                                                      "binary_dense"]
    artifact.save(model, tmp_path / "t.bnn")
    loaded = artifact.load(tmp_path / "t.bnn")
    for a, b in zip(model.layers, loaded.layers, strict=True):
        assert a.kind == b.kind and np.array_equal(a.weights, b.weights)
    assert np.array_equal(loaded.layers[0].mask, model.layers[0].mask)
    x = np.random.default_rng(0).integers(0, 2, size=(64, 17), dtype=np.uint8)
    assert np.array_equal(golden.run(loaded, x).popcounts, golden.run(model, x).popcounts)
    # The golden model's first layer is the slow +-1 dot product against the thresholds.
    first = model.layers[0]
    dot = _pm1_dot(x, first.weights, first.mask)
    p = conventions.popcount_from_dot(dot + first.live, 2 * first.live) - first.live
    assert np.array_equal(golden.run(model, x).layer_popcounts[0], p)


def test_describe_reports_zero_weights():
    facts = random_model([40, 10, 3], seed=1, ternary=True, zeros=0.5).layers[0].describe()
    assert 0.35 < facts["zero_weights"] < 0.65


def test_a_w1a1_model_keeps_format_version_1(tmp_path):
    model = random_model([8, 4, 2], seed=0)
    artifact.save(model, tmp_path / "b.bnn")
    _, manifest = artifact.load_with_manifest(tmp_path / "b.bnn")
    assert manifest["format_version"] == 1
    assert {entry["kind"] for entry in manifest["layers"]} == {"binary_dense"}


# --- multi-bit activations (the other kind of issue 18 built so far) ---


@pytest.mark.parametrize("bits", [1, 2, 3])
def test_popcount_levels_gives_the_dot_product_of_odd_levels(bits):
    rng = np.random.default_rng(bits)
    top = (1 << bits) - 1
    a = rng.integers(0, top + 1, size=(40, 11))
    w = rng.integers(0, 2, size=(6, 11))
    p = conventions.popcount_levels(a, w, bits)
    dot = (2 * a - top) @ np.where(w == 1, 1, -1).T
    assert np.array_equal(dot, 2 * p - top * 11)
    if bits == 1:
        assert np.array_equal(p, conventions.popcount_xnor(a, w))
    with pytest.raises(ValueError, match=f"{bits}-bit inputs must lie in 0..{top}"):
        conventions.popcount_levels(a + top + 1, w, bits)


def test_multibit_model_round_trip_and_chain_checks(tmp_path):
    model = random_model([9, 6, 5, 3], seed=2, act_bits=2)
    assert [layer.in_bits for layer in model.layers] == [1, 2, 2]
    assert [layer.activation_bits for layer in model.layers[:-1]] == [2, 2]
    artifact.save(model, tmp_path / "m.bnn")
    loaded = artifact.load(tmp_path / "m.bnn")
    x = np.random.default_rng(0).integers(0, 2, size=(50, 9), dtype=np.uint8)
    assert np.array_equal(golden.run(loaded, x).popcounts, golden.run(model, x).popcounts)
    binary = random_model([9, 6, 3], seed=2)
    with pytest.raises(ValueError, match=r"layer 0 \(fc0\) emits 2-bit activations but layer 1 "
                                         r"\(fc1\) takes 1-bit inputs"):
        artifact.BnnModel([model.layers[0], binary.layers[1]], model.input)
