import numpy as np
import pytest

from bnnflow.model import golden
from bnnflow.model.artifact import BnnModel, DenseLayer, InputSpec
from bnnflow.model.random_net import random_model


def reference_pm1(model, x_bits):
    """A plain +-1 matrix-product evaluation, independent of the bit-packed golden model."""
    x = x_bits.astype(np.int64) * 2 - 1
    activations = []
    for layer in model.layers:
        w = layer.weights.astype(np.int64) * 2 - 1
        dot = x @ w.T
        k = layer.in_width
        if layer.is_output:
            popcounts = (dot + k) // 2
            scores = dot
            break
        # popcount >= T  <=>  dot >= 2T - K
        fires = dot >= 2 * layer.thresholds[:, 0][None, :] - k
        activations.append(fires.astype(np.uint8))
        x = np.where(fires, 1, -1)
    classes = np.array([int(np.flatnonzero(row == row.max())[0]) for row in scores])
    return activations, popcounts, classes


@pytest.mark.parametrize("widths", [[37, 13, 5], [8, 1, 2], [64, 64, 64, 64, 10], [5, 3],
                                    [100, 21, 17, 3]])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_golden_matches_plain_pm1_matrix_product(widths, seed):
    model = random_model(widths, seed=seed)
    x = np.random.default_rng(seed + 100).integers(0, 2, size=(50, widths[0]), dtype=np.uint8)
    result = golden.run(model, x)
    activations, popcounts, classes = reference_pm1(model, x)
    assert len(result.activations) == len(activations)
    for got, want in zip(result.activations, activations, strict=True):
        assert np.array_equal(got, want)
    assert np.array_equal(result.popcounts, popcounts)
    assert np.array_equal(result.classes, classes)
    assert np.array_equal(result.layer_outputs()[-1], popcounts)


@pytest.mark.parametrize("k", [1, 6, 37])
def test_edge_thresholds_zero_k_and_k_plus_one(k):
    rng = np.random.default_rng(k)
    weights = rng.integers(0, 2, size=(3, k), dtype=np.uint8)
    hidden = DenseLayer("h", weights, np.array([[0], [k], [k + 1]]))
    out = DenseLayer("o", np.ones((2, 3), dtype=np.uint8))
    model = BnnModel([hidden, out], InputSpec(width=k, shape=(k,)))
    x = rng.integers(0, 2, size=(40, k), dtype=np.uint8)
    x[0] = weights[1]  # full agreement with neuron 1 reaches T = K exactly
    result = golden.run(model, x)
    bits = result.activations[0]
    assert np.all(bits[:, 0] == 1)
    assert np.array_equal(bits[:, 1], np.all(x == weights[1], axis=1))
    assert bits[0, 1] == 1
    assert np.all(bits[:, 2] == 0)
    assert np.array_equal(result.activations, reference_pm1(model, x)[0])


def test_ties_go_to_the_lowest_class():
    # Two identical output neurons always tie: the class must be the first one.
    w = np.array([[1, 0, 1], [1, 0, 1], [0, 1, 0]], dtype=np.uint8)
    model = BnnModel([DenseLayer("o", w)], InputSpec(width=3, shape=(3,)))
    x = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 1]], dtype=np.uint8)
    result = golden.run(model, x)
    assert np.array_equal(result.popcounts, [[3, 3, 0], [0, 0, 3], [2, 2, 1]])
    assert np.array_equal(result.classes, [0, 2, 0])


def test_single_vector_is_a_batch_of_one():
    model = random_model([9, 4, 3], seed=5)
    x = np.random.default_rng(0).integers(0, 2, size=9, dtype=np.uint8)
    assert np.array_equal(golden.classify(model, x), golden.classify(model, x[None]))


@pytest.mark.parametrize("x,message", [
    (np.zeros((2, 8), dtype=np.uint8), r"must have shape \(B, 9\), not \(2, 8\)"),
    (np.full((1, 9), 2, dtype=np.uint8), "must be 0 or 1"),
])
def test_bad_inputs_are_rejected(x, message):
    with pytest.raises(ValueError, match=message):
        golden.run(random_model([9, 4, 3]), x)


def test_run_images_encodes_with_the_input_threshold():
    w = np.eye(4, dtype=np.uint8)
    spec = InputSpec(width=4, shape=(2, 2), encoding={"kind": "threshold", "scale": 16.0,
                                                       "threshold": 0.5})
    model = BnnModel([DenseLayer("o", w)], spec)
    images = np.array([[[0, 8], [16, 7.99]]])  # 8/16 = 0.5 sits on the threshold -> bit 1
    assert np.array_equal(spec.encode(images), [[0, 1, 1, 0]])
    assert np.array_equal(golden.run_images(model, images).popcounts,
                          golden.run(model, [[0, 1, 1, 0]]).popcounts)
