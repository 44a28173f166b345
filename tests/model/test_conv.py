"""Conv and pool layers in the golden model against independent loop references, their
artifact round trip and the one-line errors for corrupt conv artifacts."""

import json
import zipfile

import numpy as np
import pytest

from bnnflow.errors import ArtifactError
from bnnflow.model import artifact, conventions, golden
from bnnflow.model.artifact import BnnModel, Conv2dLayer, DenseLayer, InputSpec, MaxPool2dLayer
from bnnflow.model.random_net import random_conv_model
from bnnflow.model.ternary_conv import TernaryConv2dLayer


def conv_reference(x, shape, weights, thresholds, kernel, stride=1, pad=0, pad_bit=0):
    """Dense loops over output pixels and window positions on +-1 values: the output bits
    ``(Ho, Wo, Cout)`` of one map ``x`` ``(H, W, Cin)``, and the popcounts; positions
    outside the map (``pad`` on every side) read ``pad_bit``."""
    h, w, cin = shape
    kh, kw = kernel
    cout = weights.shape[0]
    ho, wo = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    wts = weights.reshape(cout, kh, kw, cin).astype(np.int64) * 2 - 1
    xs = x.astype(np.int64) * 2 - 1
    counts = np.zeros((ho, wo, cout), dtype=np.int64)
    for i in range(ho):
        for j in range(wo):
            for o in range(cout):
                dot = 0
                for a in range(kh):
                    for b in range(kw):
                        r, c = i * stride + a - pad, j * stride + b - pad
                        inside = 0 <= r < h and 0 <= c < w
                        for ch in range(cin):
                            v = xs[r, c, ch] if inside else 2 * pad_bit - 1
                            dot += v * wts[o, a, b, ch]
                counts[i, j, o] = (dot + kh * kw * cin) // 2
    bits = (counts >= thresholds[None, None, :, 0]).astype(np.uint8)
    return bits, counts


def pool_reference(x, window, stride):
    h, w, c = x.shape
    ho, wo = (h - window) // stride + 1, (w - window) // stride + 1
    out = np.zeros((ho, wo, c), dtype=np.uint8)
    for i in range(ho):
        for j in range(wo):
            for ch in range(c):
                bit = 0
                for a in range(window):
                    for b in range(window):
                        bit |= int(x[i * stride + a, j * stride + b, ch])
                out[i, j, ch] = bit
    return out


def test_channels_last_index():
    assert conventions.map_index((5, 7, 3), 2, 4, 1) == (2 * 7 + 4) * 3 + 1
    m = np.arange(5 * 7 * 3).reshape(5, 7, 3)
    assert m.reshape(-1)[conventions.map_index((5, 7, 3), 4, 6, 2)] == m[4, 6, 2]


def test_window_order_is_kh_kw_cin():
    shape = (4, 5, 3)
    x = np.arange(60).reshape(1, 60)
    win = conventions.windows(x, shape, (2, 3))
    assert win.shape == (1, 3 * 3, 2 * 3 * 3)
    i, j = 1, 2  # output pixel p = i * Wo + j
    for a in range(2):
        for b in range(3):
            for ch in range(3):
                assert win[0, i * 3 + j, (a * 3 + b) * 3 + ch] == \
                    conventions.map_index(shape, i + a, j + b, ch)


CONV_CASES = [((5, 5, 1), (1, 1), 3), ((7, 6, 1), (3, 3), 4), ((9, 7, 2), (5, 3), 3),
              ((6, 6, 11), (2, 2), 5), ((5, 9, 9), (4, 5), 2), ((8, 8, 3), (5, 5), 7),
              ((3, 3, 13), (3, 3), 6)]


@pytest.mark.parametrize("shape, kernel, cout", CONV_CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_conv_matches_loop_reference(shape, kernel, cout, seed):
    rng = np.random.default_rng(seed)
    k = kernel[0] * kernel[1] * shape[2]
    weights = rng.integers(0, 2, (cout, k), dtype=np.uint8)
    thresholds = rng.integers(0, k + 2, (cout, 1))
    thresholds[0] = 0
    thresholds[-1] = k + 1
    layer = Conv2dLayer("c", shape, kernel, weights, thresholds)
    x = rng.integers(0, 2, (3, int(np.prod(shape))), dtype=np.uint8)
    bits, counts = layer.forward(x)
    for b in range(3):
        want_bits, want_counts = conv_reference(x[b].reshape(shape), shape, weights,
                                                thresholds, kernel)
        assert np.array_equal(bits[b], want_bits.reshape(-1))
        assert np.array_equal(counts[b], want_counts.reshape(-1))


@pytest.mark.parametrize("shape, kernel, cout, stride", [
    ((7, 7, 1), (3, 3), 3, 2), ((9, 8, 2), (2, 3), 4, 3), ((6, 5, 3), (1, 1), 2, 2),
    ((8, 9, 2), (4, 2), 5, 2), ((5, 5, 1), (2, 2), 2, 4), ((11, 7, 3), (3, 1), 3, 5)])
@pytest.mark.parametrize("ternary", [False, True])
def test_strided_conv_matches_loop_reference(shape, kernel, cout, stride, ternary):
    rng = np.random.default_rng(stride * 7 + cout)
    k = kernel[0] * kernel[1] * shape[2]
    weights = rng.integers(0, 2, (cout, k), dtype=np.uint8)
    thresholds = rng.integers(0, k + 2, (cout, 1))
    if ternary:     # all weights live: the ternary layer must then count as the binary one
        layer = TernaryConv2dLayer("c", shape, kernel, weights, thresholds, stride=stride,
                                   mask=np.ones_like(weights))
    else:
        layer = Conv2dLayer("c", shape, kernel, weights, thresholds, stride=stride)
    assert layer.out_shape == ((shape[0] - kernel[0]) // stride + 1,
                               (shape[1] - kernel[1]) // stride + 1, cout)
    x = rng.integers(0, 2, (3, int(np.prod(shape))), dtype=np.uint8)
    bits, counts = layer.forward(x)
    for b in range(3):
        want_bits, want_counts = conv_reference(x[b].reshape(shape), shape, weights,
                                                thresholds, kernel, stride)
        assert np.array_equal(bits[b], want_bits.reshape(-1))
        assert np.array_equal(counts[b], want_counts.reshape(-1))


@pytest.mark.parametrize("shape, kernel, cout, stride, pad", [
    ((5, 5, 1), (3, 3), 3, 1, 1), ((6, 7, 2), (3, 3), 4, 2, 1), ((4, 5, 3), (5, 3), 2, 1, 2),
    ((7, 4, 2), (2, 2), 3, 3, 1), ((3, 3, 5), (3, 3), 2, 1, 2)])
@pytest.mark.parametrize("pad_bit", [0, 1])
@pytest.mark.parametrize("ternary", [False, True])
def test_padded_conv_matches_loop_reference(shape, kernel, cout, stride, pad, pad_bit, ternary):
    rng = np.random.default_rng(pad * 11 + stride * 7 + cout)
    k = kernel[0] * kernel[1] * shape[2]
    weights = rng.integers(0, 2, (cout, k), dtype=np.uint8)
    thresholds = rng.integers(0, k + 2, (cout, 1))
    geometry = {"stride": stride, "pad": pad, "pad_value": pad_bit}
    if ternary:     # all weights live: the ternary layer must then count as the binary one
        layer = TernaryConv2dLayer("c", shape, kernel, weights, thresholds,
                                   mask=np.ones_like(weights), **geometry)
    else:
        layer = Conv2dLayer("c", shape, kernel, weights, thresholds, **geometry)
    assert layer.padded_shape == (shape[0] + 2 * pad, shape[1] + 2 * pad, shape[2])
    x = rng.integers(0, 2, (3, int(np.prod(shape))), dtype=np.uint8)
    bits, counts = layer.forward(x)
    for b in range(3):
        want_bits, want_counts = conv_reference(x[b].reshape(shape), shape, weights,
                                                thresholds, kernel, stride, pad, pad_bit)
        assert layer.out_shape == want_bits.shape
        assert np.array_equal(bits[b], want_bits.reshape(-1))
        assert np.array_equal(counts[b], want_counts.reshape(-1))


def test_padding_holds_the_pad_code_in_every_channel_of_n_bit_maps():
    x = np.arange(1, 2 * 3 * 2 + 1).reshape(1, -1)      # a 2x3x2 map of codes 1..12
    win = conventions.windows(x, (2, 3, 2), (2, 2), 1, 1, 200)
    assert win.shape == (1, 3 * 4, 2 * 2 * 2)
    # Output pixel (0, 0) reads rows -1..0 and columns -1..0: three padded pixels.
    assert win[0, 0].tolist() == [200, 200, 200, 200, 200, 200, 1, 2]
    # Output pixel (1, 2) reads rows 0..1 and columns 1..2 of the map itself.
    assert win[0, 1 * 4 + 2].tolist() == [3, 4, 5, 6, 9, 10, 11, 12]


def test_padded_conv_round_trips_and_unpadded_writes_no_field(tmp_path):
    model = random_conv_model((6, 6, 8), [("conv", 3, 3, 3, 2, 1, 1), ("conv", 4, 3, 3, 1, 1),
                                          ("conv", 2, 2, 2, 1), ("dense", 5)], 3, seed=2,
                              input_bits=8)
    assert [layer.out_shape for layer in model.layers[:3]] == [(3, 3, 3), (3, 3, 4), (2, 2, 2)]
    artifact.save(model, tmp_path / "p.bnn")
    with zipfile.ZipFile(tmp_path / "p.bnn") as zf:
        entries = json.loads(zf.read("manifest.json"))["layers"]
    assert (entries[0]["pad"], entries[0]["pad_value"]) == (1, 1)
    assert (entries[1]["pad"], entries[1]["pad_value"]) == (1, 0)
    assert "pad" not in entries[2] and "pad_value" not in entries[2]
    loaded = artifact.load(tmp_path / "p.bnn")
    assert [(v.pad, v.pad_value) for v in loaded.layers[:3]] == [(1, 1), (1, 0), (0, 0)]
    x = np.random.default_rng(0).integers(0, 256, (4, 6 * 6 * 8))
    assert np.array_equal(golden.run(loaded, x).popcounts, golden.run(model, x).popcounts)


def test_strided_conv_round_trips_and_stride_1_writes_no_field(tmp_path):
    model = random_conv_model((9, 9, 2), [("conv", 3, 3, 3, 2), ("conv", 4, 2, 2, 1),
                                          ("dense", 5)], 3, seed=4)
    assert model.layers[0].out_shape == (4, 4, 3) and model.layers[1].out_shape == (3, 3, 4)
    artifact.save(model, tmp_path / "s.bnn")
    with zipfile.ZipFile(tmp_path / "s.bnn") as zf:
        entries = json.loads(zf.read("manifest.json"))["layers"]
    assert entries[0]["stride"] == 2 and "stride" not in entries[1]
    loaded = artifact.load(tmp_path / "s.bnn")
    assert [getattr(v, "stride", None) for v in loaded.layers] == [2, 1, None, None]
    x = np.random.default_rng(0).integers(0, 2, (4, 162), dtype=np.uint8)
    assert np.array_equal(golden.run(loaded, x).popcounts, golden.run(model, x).popcounts)


def test_conv_stride_must_be_a_positive_integer():
    w = np.zeros((2, 9), dtype=np.uint8)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match=f"conv stride must be a positive integer, not "
                                             f"{bad!r}"):
            Conv2dLayer("c", (5, 5, 1), (3, 3), w, np.ones((2, 1), dtype=np.int64),
                        stride=bad)


@pytest.mark.parametrize("shape, window, stride", [
    ((4, 4, 1), 2, 2), ((5, 7, 3), 2, 2), ((9, 9, 10), 3, 3), ((7, 5, 2), 3, 2),
    ((6, 6, 9), 2, 1), ((3, 3, 1), 3, 3)])
def test_pool_is_or_of_window_against_loop_reference(shape, window, stride):
    rng = np.random.default_rng(window * 10 + stride)
    layer = MaxPool2dLayer("p", shape, window, stride)
    x = (rng.random((4, int(np.prod(shape)))) < 0.2).astype(np.uint8)
    bits, counts = layer.forward(x)
    assert layer.out_width == bits.shape[1]
    for b in range(4):
        assert np.array_equal(bits[b], pool_reference(x[b].reshape(shape), window,
                                                      stride).reshape(-1))
    assert np.array_equal(counts, bits)


def test_network_of_conv_pool_dense_runs_layer_by_layer():
    model = random_conv_model((11, 10, 2), [("conv", 5, 3), ("pool", 2), ("conv", 9, 2, 3),
                                            ("dense", 7)], 4, seed=2)
    x = np.random.default_rng(0).integers(0, 2, (6, 220), dtype=np.uint8)
    r = golden.run(model, x)
    h = x
    for i, layer in enumerate(model.layers[:-1]):
        h = layer.forward(h)[0]
        assert np.array_equal(r.activations[i], h)
    dense = model.layers[-1]
    assert np.array_equal(r.popcounts, conventions.popcount_xnor(h, dense.weights))
    assert [a.shape[1] for a in r.activations] == [9 * 8 * 5, 4 * 4 * 5, 3 * 2 * 9, 7]


def test_conv_model_round_trips(tmp_path):
    model = random_conv_model((8, 7, 3), [("conv", 6, 3), ("pool", 2), ("dense", 5)], 3, seed=1)
    artifact.save(model, tmp_path / "c.bnn")
    loaded = artifact.load(tmp_path / "c.bnn")
    for a, b in zip(loaded.layers, model.layers, strict=True):
        assert type(a) is type(b) and a.name == b.name
        assert getattr(a, "in_shape", None) == getattr(b, "in_shape", None)
        if hasattr(a, "weights"):
            assert np.array_equal(a.weights, b.weights)
    x = np.random.default_rng(3).integers(0, 2, (5, 168), dtype=np.uint8)
    assert np.array_equal(golden.run(loaded, x).popcounts, golden.run(model, x).popcounts)


@pytest.fixture
def conv_file(tmp_path):
    model = random_conv_model((8, 8, 2), [("conv", 4, 3), ("pool", 2), ("dense", 6)], 3)
    path = tmp_path / "conv.bnn"
    artifact.save(model, path)
    return path


def edit(src, dst, change):
    with zipfile.ZipFile(src) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    manifest = json.loads(members["manifest.json"])
    change(manifest)
    manifest["checksum"] = artifact.model_checksum(manifest)
    members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return dst


def _set(layer, **values):
    def change(m):
        m["layers"][layer].update(values)
    return change


CORRUPT = {
    "kernel larger than map": (_set(0, kernel=[9, 3]),
                               r"layer 0: kernel 9x3 is larger than the 8x8 input map"),
    "out shape": (_set(0, out_shape=[5, 6, 4]),
                  r"layer 0: out_shape \[5, 6, 4\] does not follow from in_shape \[8, 8, 2\], "
                  r"kernel \[3, 3\], stride 1 and pad 0 \(expected \[6, 6, 4\]\)"),
    "stride out shape": (_set(0, stride=2),
                         r"layer 0: out_shape \[6, 6, 4\] does not follow from in_shape "
                         r"\[8, 8, 2\], kernel \[3, 3\], stride 2 and pad 0 \(expected "
                         r"\[3, 3, 4\]"),
    "pad out shape": (_set(0, pad=1),
                      r"layer 0: out_shape \[6, 6, 4\] does not follow from in_shape "
                      r"\[8, 8, 2\], kernel \[3, 3\], stride 1 and pad 1 \(expected "
                      r"\[8, 8, 4\]"),
    "pad as large as the kernel": (_set(0, pad=3, out_shape=[12, 12, 4]),
                                   r"layer 0: conv pad must be an integer in 0..2 \(less than "
                                   r"the 3x3 kernel\), not 3"),
    "pad value not a bit": (_set(0, pad=1, pad_value=2, out_shape=[8, 8, 4], in_width=128,
                                 out_width=256),
                            r"layer 0: pad_value must be an input code in 0..1, not 2"),
    "bad stride": (_set(0, stride=0), r"layer 0: conv stride must be a positive integer, not 0"),
    "kernel not two ints": (_set(0, kernel=[3]),
                            r"layer 0: kernel must be 2 positive integers, not \[3\]"),
    "conv as output": (_set(0, output="popcount"),
                       r"layer 0: a binary_conv2d layer is a hidden layer"),
    "bad pool window": (_set(1, window=0), r"layer 1: window must be a positive integer"),
    "pool window too big": (_set(1, window=7, stride=7, out_shape=[1, 1, 4]),
                            r"layer 1: pool window 7 is larger than the 6x6 input map"),
    "pool stride over window": (_set(1, stride=3),
                                r"layer 1: pool stride 3 is larger than its window 2"),
    "shapes do not chain": (_set(1, in_shape=[2, 18, 4], out_shape=[1, 9, 4]),
                            r"layer 1 \(pool1\) takes a 2x18x4 map but receives 6x6x4"),
    "width disagrees with shape": (_set(0, in_width=100),
                                   r"layer 0: in_width must be 128 for shape \[8, 8, 2\]"),
}


@pytest.mark.parametrize("case", list(CORRUPT))
def test_corrupt_conv_artifacts_are_one_line_errors(tmp_path, conv_file, case):
    change, message = CORRUPT[case]
    bad = edit(conv_file, tmp_path / "bad.bnn", change)
    with pytest.raises(ArtifactError, match=message) as info:
        artifact.load(bad)
    assert str(info.value).startswith(f"{bad}: ") and "\n" not in str(info.value)


def test_conv_after_a_dense_layer_or_a_thermometer_input_is_refused():
    rng = np.random.default_rng(0)
    conv = Conv2dLayer("c", (4, 4, 1), (3, 3), rng.integers(0, 2, (2, 9), dtype=np.uint8),
                       np.ones((2, 1), dtype=np.int64))
    out = DenseLayer("o", rng.integers(0, 2, (3, 8), dtype=np.uint8), None)
    with pytest.raises(ValueError, match=r"layer 1 \(c\) takes a 4x4x1 map but receives a "
                                         r"flat vector"):
        BnnModel([DenseLayer("d", rng.integers(0, 2, (16, 16), dtype=np.uint8),
                             np.ones((16, 1), dtype=np.int64)), conv, out],
                 InputSpec(16, (4, 4)))
    thermo = {"kind": "thermometer", "scale": 1.0, "thresholds": [0.3, 0.6]}
    conv2 = Conv2dLayer("c", (4, 2, 2), (3, 1), rng.integers(0, 2, (2, 6), dtype=np.uint8),
                        np.ones((2, 1), dtype=np.int64))
    with pytest.raises(ValueError, match=r"layer 0 \(c\) takes a 4x2x2 map but receives a "
                                         r"flat vector"):
        BnnModel([conv2, DenseLayer("o", rng.integers(0, 2, (3, 4), dtype=np.uint8), None)],
                 InputSpec(16, (4, 2), thermo))


def test_bad_layer_parameters_are_value_errors():
    w = np.zeros((2, 9), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"c: weights must be \(Cout, 18\) for a 3x3 kernel "
                                         r"over 2 channels, not \(2, 9\)"):
        Conv2dLayer("c", (5, 5, 2), (3, 3), w, np.ones((2, 1), dtype=np.int64))
    with pytest.raises(ValueError, match=r"c: a conv layer needs thresholds"):
        Conv2dLayer("c", (5, 5, 1), (3, 3), w, None)
    with pytest.raises(ValueError, match=r"pool window 6 is larger than the 5x5 input map"):
        MaxPool2dLayer("p", (5, 5, 1), 6)
