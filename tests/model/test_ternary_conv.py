"""The new conv kinds of issue 18: ``ternary_conv2d``, ``in_bits`` on conv layers (8-bit pixels
into the first conv) and ``n``-bit activations with pools of levels: golden model against a
direct numpy computation, manifests, parameter checks, the training layer's zero band and exact
export, short training runs."""

import json
import zipfile

import numpy as np
import pytest
import torch

from bnnflow.cli import main
from bnnflow.model import artifact, golden
from bnnflow.model.artifact import Conv2dLayer, InputSpec, TernaryConv2dLayer
from bnnflow.model.cnn import BinaryCNN
from bnnflow.model.export import export_model
from bnnflow.model.layers import TernaryConv2d, ternary_delta
from bnnflow.model.random_net import random_conv_model
from bnnflow.model.train import train_and_export

PIXELS = {"kind": "pixels", "scale": 255.0, "bits": 8}


def direct_conv(x, in_shape, kernel, signs, mask, bits):
    """Live popcounts of every output pixel by loops, straight from the definitions: weight
    ``+1`` counts ``a``, ``-1`` counts ``L - a``, ``0`` nothing (``(B, Ho, Wo, Cout)``)."""
    h, w, c = in_shape
    kh, kw = kernel
    top = (1 << bits) - 1
    maps = np.asarray(x).reshape(len(x), h, w, c)
    wt = (2 * signs.astype(np.int64) - 1) * mask        # -1, 0, +1
    wt = wt.reshape(len(wt), kh, kw, c)
    out = np.zeros((len(x), h - kh + 1, w - kw + 1, len(wt)), dtype=np.int64)
    for i in range(h - kh + 1):
        for j in range(w - kw + 1):
            patch = maps[:, i:i + kh, j:j + kw, :].astype(np.int64)
            for n in range(len(wt)):
                plus = (wt[n] == 1) * patch
                minus = (wt[n] == -1) * (top - patch)
                out[:, i, j, n] = (plus + minus).sum(axis=(1, 2, 3))
    return out


@pytest.mark.parametrize(("in_shape", "kernel", "cout", "bits", "ternary"), [
    ((7, 5, 3), (3, 2), 5, 1, True),
    ((5, 9, 1), (3, 3), 3, 8, True),
    ((6, 7, 2), (1, 3), 4, 8, False),
    ((9, 4, 3), (5, 3), 7, 3, True),
])
def test_golden_conv_equals_a_direct_computation(in_shape, kernel, cout, bits, ternary):
    rng = np.random.default_rng(sum(in_shape) + bits)
    k = kernel[0] * kernel[1] * in_shape[2]
    mask = (rng.random((cout, k)) > 0.35).astype(np.uint8) if ternary else \
        np.ones((cout, k), np.uint8)
    signs = rng.integers(0, 2, (cout, k), dtype=np.uint8) & mask
    top = (1 << bits) - 1
    live = mask.sum(axis=1) * top
    t = np.sort(np.stack([rng.integers(0, m + 2, 3) for m in live]), axis=1)[:, 1:2]
    if ternary:
        layer = TernaryConv2dLayer("c", in_shape, kernel, signs, t, in_bits=bits, mask=mask)
    else:
        layer = Conv2dLayer("c", in_shape, kernel, signs, t, in_bits=bits)
    x = rng.integers(0, top + 1, (6, int(np.prod(in_shape))))
    acts, counts = layer.forward(x)
    want = direct_conv(x, in_shape, kernel, signs, mask, bits)
    assert np.array_equal(counts, want.reshape(6, -1))
    assert np.array_equal(acts, (want >= t[:, 0]).astype(np.uint8).reshape(6, -1))


@pytest.mark.parametrize("kw", [{"ternary": True}, {"input_bits": 8},
                                {"ternary": True, "input_bits": 8}, {"act_bits": 2}])
def test_manifest_round_trip_of_the_new_conv_kinds(tmp_path, kw):
    model = random_conv_model((7, 6, 2), [("conv", 5, 3), ("pool", 2), ("conv", 3, 2),
                                          ("dense", 6)], 3, seed=2, **kw)
    path = tmp_path / "m.bnn"
    checksum = artifact.save(model, path)
    again, manifest = artifact.load_with_manifest(path)
    assert manifest["checksum"] == checksum
    first = manifest["layers"][0]
    assert first["kind"] == ("ternary_conv2d" if kw.get("ternary") else "binary_conv2d")
    assert first.get("in_bits") == kw.get("input_bits")     # written only when not 1
    assert manifest["layers"][3].get("in_bits") == kw.get("act_bits")
    assert manifest["layers"][1]["activation_bits"] == kw.get("act_bits", 1)
    for a, b in zip(model.layers, again.layers, strict=True):
        assert type(a) is type(b) and a.in_bits == b.in_bits
        for name in ("weights", "mask", "thresholds"):
            if hasattr(a, name):
                assert np.array_equal(getattr(a, name), getattr(b, name))
    top = (1 << model.input.bits) - 1
    x = np.random.default_rng(0).integers(0, top + 1, (20, model.input.width))
    assert np.array_equal(golden.run(again, x).popcounts, golden.run(model, x).popcounts)
    assert again.input.map_shape == (7, 6, 2)


def test_pool_of_levels_is_the_largest_level_of_each_window():
    rng = np.random.default_rng(4)
    pool = random_conv_model((7, 5, 3), [("conv", 4, 2), ("pool", 2)], 2, seed=4,
                             act_bits=2).layers[1]
    assert (pool.in_bits, pool.activation_bits, pool.in_shape) == (2, 2, (6, 4, 4))
    x = rng.integers(0, 4, (5, 96))
    got, _ = pool.forward(x)
    maps = x.reshape(5, 6, 4, 4)
    want = np.zeros((5, 3, 2, 4), dtype=np.int64)
    for i in range(3):
        for j in range(2):
            want[:, i, j] = maps[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max(axis=(1, 2))
    assert np.array_equal(got, want.reshape(5, -1))
    with pytest.raises(ValueError, match="p: bits must be an integer in 1..8, not 0"):
        type(pool)("p", (4, 4, 1), 2, bits=0)


def test_w1a1_conv_manifests_keep_their_form_and_old_files_load(tmp_path):
    model = random_conv_model((7, 6, 2), [("conv", 5, 3), ("pool", 2), ("dense", 6)], 3, seed=1)
    entry, _ = model.layers[0].to_manifest()
    assert "in_bits" not in entry and "mask" not in entry["arrays"]
    # A file written before in_bits existed: no key at all, read as 1.
    path = tmp_path / "old.bnn"
    artifact.save(model, path)
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert all("in_bits" not in layer for layer in manifest["layers"])
    assert artifact.load(path).layers[0].in_bits == 1


def _ternary_layer(**over):
    rng = np.random.default_rng(0)
    mask = (rng.random((4, 18)) > 0.3).astype(np.uint8)
    kw = {"name": "c", "in_shape": (5, 5, 2), "kernel": (3, 3),
          "weights": rng.integers(0, 2, (4, 18), dtype=np.uint8) & mask,
          "thresholds": np.zeros((4, 1), np.int64), "mask": mask}
    kw.update(over)
    return TernaryConv2dLayer(**kw)


@pytest.mark.parametrize(("over", "message"), [
    ({"mask": np.ones((4, 17), np.uint8)}, r"c: weights and mask must be \(N, K\) arrays of one "
                                           r"shape, not \(4, 18\) and \(4, 17\)"),
    ({"weights": np.ones((4, 18), np.uint8), "mask": np.zeros((4, 18), np.uint8)},
     "c: a sign bit is set where the mask is 0"),
    ({"thresholds": np.full((4, 1), 99)}, r"c: a threshold lies outside \[0, L\*m \+ 1\]"),
    ({"in_bits": 9}, "c: in_bits must be an integer in 1..8, not 9"),
    ({"in_shape": (2, 5, 2)}, "kernel 3x3 is larger than the 2x5 input map"),
    ({"thresholds": None}, "c: a conv layer needs thresholds"),
])
def test_ternary_conv_parameters_are_checked(over, message):
    with pytest.raises(ValueError, match=message):
        _ternary_layer(**over)


def test_conv_in_bits_is_checked():
    with pytest.raises(ValueError, match="c: in_bits must be an integer in 1..8, not True"):
        Conv2dLayer("c", (4, 4, 1), (3, 3), np.ones((2, 9), np.uint8),
                    np.zeros((2, 1), np.int64), in_bits=True)


def test_manifest_errors_name_the_layer(tmp_path):
    model = random_conv_model((6, 5, 2), [("conv", 3, 3), ("dense", 4)], 2, seed=3, ternary=True)
    entry, arrays = model.layers[0].to_manifest()
    with pytest.raises(ValueError, match="layer 0: weight_bits must be 2 for ternary_conv2d, "
                                         "not 1"):
        TernaryConv2dLayer.from_manifest({**entry, "weight_bits": 1}, arrays.__getitem__,
                                         "layer 0")
    with pytest.raises(ValueError, match="layer 0: in_bits must be an integer in 1..8, not 0"):
        TernaryConv2dLayer.from_manifest({**entry, "in_bits": 0}, arrays.__getitem__, "layer 0")
    with pytest.raises(ValueError, match="layer 0: a ternary_conv2d layer is a hidden layer"):
        TernaryConv2dLayer.from_manifest({**entry, "output": "popcount"}, arrays.__getitem__,
                                         "layer 0")


def test_inspect_shows_ternary_and_8_bit_conv_layers(tmp_path, capsys, monkeypatch):
    model = random_conv_model((6, 5, 2), [("conv", 3, 3), ("dense", 4)], 2, seed=3,
                              ternary=True, input_bits=8)
    artifact.save(model, tmp_path / "m.bnn")
    assert main(["inspect", "--json", str(tmp_path / "m.bnn")]) == 0
    info = json.loads(capsys.readouterr().out)["layers"]
    assert info[0]["kind"] == "ternary_conv2d" and info[0]["in_bits"] == 8
    assert info[0]["weight_bits"] == 2
    assert info[0]["zero_weights"] == round(float(1 - model.layers[0].mask.mean()), 4)
    assert info[1]["kind"] == "ternary_dense" and info[1]["in_bits"] == 1
    monkeypatch.setenv("COLUMNS", "200")     # one table row per layer, no wrapped cells
    assert main(["inspect", str(tmp_path / "m.bnn")]) == 0
    assert "3x3 ternary conv, 8-bit in" in capsys.readouterr().out


@pytest.mark.parametrize("rule", ["uniform", "balanced"])
def test_ternary_conv_zero_band_is_the_dense_rule_per_output_channel(rule):
    torch.manual_seed(0)
    conv = TernaryConv2d(3, 5, 3, rule=rule)
    t = conv.ternary_window_weight()
    flat = conv.weight.detach().reshape(5, -1)            # (Cin, kh, kw) per output channel
    delta = ternary_delta(flat, 0.7, rule)
    want = torch.where(flat.abs() >= delta, torch.where(flat >= 0, 1.0, -1.0), 0.0)
    # Window order (kh, kw, Cin) of the same values.
    want = want.reshape(5, 3, 3, 3).permute(0, 2, 3, 1).reshape(5, -1)
    assert torch.equal(t, want)
    if rule == "balanced":
        assert int((t == 0).sum()) == 5 * 27 // 3
    x = torch.randn(2, 3, 6, 6)
    assert torch.equal(conv(x), torch.nn.functional.conv2d(
        x, want.reshape(5, 3, 3, 3).permute(0, 3, 1, 2)))
    with pytest.raises(ValueError, match="rule must be one of uniform, balanced, not 'x'"):
        TernaryConv2d(3, 5, 3, rule="x")
    with pytest.raises(ValueError, match="weights must be one of binary, ternary, not 'quad'"):
        BinaryCNN((6, 6, 1), (("conv", 2, 3),), 2, weights="quad")


def _hand_set(net, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in net.blocks:
            if hasattr(block, "weight"):
                block.weight.uniform_(-1, 1, generator=g)
        for bn in net.norms.values():
            n = bn.num_features
            bn.weight.copy_(torch.randn(n, generator=g) * 2)
            bn.weight[0::3] = -bn.weight[0::3].abs()           # negative scales
            bn.bias.copy_(torch.randn(n, generator=g) * 3)
            bn.running_mean.copy_(torch.randn(n, generator=g) * 8)
            bn.running_var.copy_(torch.rand(n, generator=g) * 40 + 0.01)
        net.out_norm.running_var.fill_(9.0)
    return net.eval()


@pytest.mark.parametrize(("weights", "bits", "act"), [("ternary", 1, 1), ("binary", 8, 1),
                                                      ("ternary", 8, 1), ("binary", 1, 2),
                                                      ("ternary", 8, 3)])
@pytest.mark.parametrize("seed", [0, 1])
def test_cnn_export_is_exact_layer_by_layer(weights, bits, act, seed):
    in_shape = (9, 7, 2)
    torch.manual_seed(seed)
    net = _hand_set(BinaryCNN(in_shape, (("conv", 6, 3), ("pool", 2), ("conv", 5, 2),
                                         ("dense", 7)), 4, weights=weights, act_bits=act), seed)
    top = (1 << bits) - 1
    spec = InputSpec(width=126, shape=in_shape) if bits == 1 else \
        InputSpec(width=126, shape=in_shape, encoding=PIXELS)
    model = export_model(net, spec)
    a = np.random.default_rng(seed).integers(0, top + 1, (200, 126))
    x = torch.from_numpy((2 * a - top).astype(np.float32))
    g, t = golden.run(model, a), net.trace(x)
    assert np.array_equal(g.classes, net(x).argmax(dim=1).numpy())
    levels = (1 << act) - 1
    for got, want in zip(g.activations, t["activations"], strict=True):
        assert np.array_equal(got, (want.numpy() + levels) / 2)      # v = 2a - L
    kinds = [layer.kind for layer in model.layers]
    conv = "ternary_conv2d" if weights == "ternary" else "binary_conv2d"
    dense = "ternary_dense" if weights == "ternary" else "binary_dense"
    assert kinds == [conv, "maxpool2d", conv, dense, "binary_dense"]
    assert model.layers[0].in_bits == bits and model.layers[2].in_bits == act
    assert model.layers[1].bits == act and model.layers[3].activation_bits == act


@pytest.mark.parametrize("kw", [{"weights": "ternary"}, {"input_bits": 8}])
def test_cnv_mnist_trains_one_epoch_and_exports_exactly(kw):
    result = train_and_export(preset="cnv-mnist", dataset="mnist5k", epochs=1, progress=False,
                              **kw)
    m, layers = result.metrics, result.model.layers
    assert m["agreement"] == 1.0
    if "weights" in kw:
        assert [layer.kind for layer in layers].count("ternary_conv2d") == 4
        assert layers[-2].kind == "ternary_dense" and layers[-1].kind == "binary_dense"
        assert 0 < m["zero_weights"] < 1 and m["weights"] == "ternary"
    else:
        assert layers[0].in_bits == 8 and all(layer.in_bits == 1 for layer in layers[1:])
        assert result.model.input.encoding["kind"] == "pixels" and m["input_bits"] == 8


@pytest.mark.slow    # about 21 s
def test_cnv_mnist_with_2_bit_activations_trains_one_epoch_and_exports_exactly():
    result = train_and_export(preset="cnv-mnist", dataset="mnist5k", epochs=1, progress=False,
                              act_bits=2)
    assert result.metrics["agreement"] == 1.0 and result.metrics["act_bits"] == 2
    layers = result.model.layers
    assert [layer.activation_bits for layer in layers[:-1]] == [2] * (len(layers) - 1)
    assert layers[0].in_bits == 1 and all(layer.in_bits == 2 for layer in layers[1:])
