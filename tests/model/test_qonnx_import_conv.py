"""``bnnflow import`` of Brevitas CNNs (``QuantConv2d``, ``MaxPool2d``, NCHW; W1A1, W1A2 and W2A2,
and W1A1 with overlapping pool windows or a stride-2 convolution): a .bnn model of conv, pool and
dense layers whose golden classes equal Brevitas' own eval and the qonnx executor's, that the conv
hardware reproduces, strided convolutions included; zero padding where 0 is an input code's value
(CNV's 8-bit input: code 128) imports as that pad code; zero-padded +-1 maps, average-pooled and
thermometer-input graphs get one line and exit status 2."""

import dataclasses
import re

import numpy as np
import pytest

from bnnflow.model import artifact, golden
from bnnflow.model.artifact import BnnModel
from bnnflow.model.qonnx_import_conv import hwc_columns, pad_code, repeat_channels, window_rows

from .qonnx_fixtures import (
    BREVITAS_WARNINGS,
    brevitas_classes,
    brevitas_cnn,
    export_brevitas,
    import_refused,
    import_untrained_cnn,
    run_cli,
    train_brevitas,
)

pytestmark = BREVITAS_WARNINGS


#: (weight bits, activation bits, pool) of the Brevitas CNNs, and what each imports as: the
#: kinds and the map after the second conv (2-bit activations: two thermometer channels each).
CNNS = {"w1a1": ((1, 1, "max"), ["binary_conv2d", "maxpool2d", "binary_conv2d",
                                 "binary_dense"], (2, 2, 6)),
        "w1a2": ((1, 2, "max"), ["binary_conv2d", "maxpool2d", "binary_conv2d",
                                 "binary_dense"], (2, 2, 12)),
        "w2a2": ((2, 2, "max"), ["ternary_conv2d", "maxpool2d", "ternary_conv2d",
                                 "binary_dense"], (2, 2, 12)),
        # MaxPool2d(3, stride=1): overlapping windows, 6x6 -> 4x4.
        "w1a1-overlap": ((1, 1, "overlap"), ["binary_conv2d", "maxpool2d", "binary_conv2d",
                                             "binary_dense"], (3, 3, 6)),
        # QuantConv2d(1, 8, 3, stride=2): 8x8 -> 3x3, pooled to 1x1.
        "w1a1-stride2": ((1, 1, "max", 2), ["binary_conv2d", "maxpool2d", "binary_conv2d",
                                            "binary_dense"], (1, 1, 6))}


@pytest.fixture(scope="module", params=list(CNNS))
def cnn_run(request, tmp_path_factory, digits):
    """A trained and exported Brevitas CNN: ``(name, onnx path, Brevitas' test classes)``."""
    name = request.param
    weight_bits, act_bits, pool, *stride = CNNS[name][0]
    folder = tmp_path_factory.mktemp(f"brevitas_cnn_{name}")
    net = train_brevitas(brevitas_cnn(weight_bits=weight_bits, act_bits=act_bits, pool=pool,
                                      stride=stride[0] if stride else 1),
                         digits.x_train / 16, digits.y_train, epochs=3, batch=128)
    classes = brevitas_classes(net, digits.x_test / 16)
    return name, export_brevitas(net, folder / "cnn.onnx"), classes


def test_window_rows_and_hwc_columns_follow_the_conventions():
    raw = np.arange(2 * 3 * 2 * 2).reshape(2, 3, 2, 2)          # (Cout, Cin, kh, kw)
    rows = window_rows(raw)
    # row 0, window position (a, b, ch) = (1, 0, 2) sits at (a * kw + b) * Cin + ch = 8
    assert rows.shape == (2, 12) and rows[0, 8] == raw[0, 2, 1, 0]
    chw = np.arange(3 * 2 * 4).reshape(1, -1)                   # C=3, H=2, W=4 flattened
    hwc = hwc_columns(chw, (2, 4, 3))
    # channels-last position (h, w, c) = (1, 2, 0) is (h * W + w) * C + c = 18
    assert hwc[0, 18] == chw[0, 0 * 8 + 1 * 4 + 2]
    # two thermometer copies of 3 channels at 2 positions: channel l * 3 + c
    rep = repeat_channels(np.arange(6).reshape(1, 6), 3, 2)
    assert rep.tolist() == [[0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5]]


def test_brevitas_cnn_imports_with_brevitas_classes(cnn_run, digits, tmp_path, capsys):
    name, path, expected = cnn_run
    out = tmp_path / "cnn.bnn"
    code, stdout, err = run_cli(capsys, "import", path, "-o", out)
    assert (code, err) == (0, "")
    model = artifact.load(out)
    _, kinds, second = CNNS[name]
    assert [layer.kind for layer in model.layers] == kinds
    assert model.layers[0].in_shape == (8, 8, 1) and model.layers[2].out_shape == second
    assert model.layers[0].stride == (2 if "stride" in name else 1)
    result = golden.run_images(model, digits.x_test)
    assert np.array_equal(result.classes, expected)
    # Trained, not one class (3 epochs; a 3x3 pool of a 6x6 map keeps little, about 25 %, and
    # a stride-2 conv pooled to 1x1 leaves 8 bits of the image, 22 %).
    assert np.mean(result.classes == digits.y_test) > (0.3 if name in ("w1a1", "w1a2", "w2a2")
                                                       else 0.18)
    assert len(np.unique(result.classes)) >= 5
    n = len(digits.x_test)
    assert f"{n} / {n} test images of digits have equal classes" in stdout


def test_imported_brevitas_cnn_matches_amaranth_hardware(cnn_run, tmp_path, capsys):
    out = tmp_path / "cnn.bnn"
    assert run_cli(capsys, "import", cnn_run[1], "-o", out)[0] == 0
    code, stdout, _ = run_cli(capsys, "verify", out, "--sim", "amaranth", "--images", "4",
                           "--fold", "auto", "--ii", "256")
    assert code == 0, stdout


@pytest.mark.parametrize(("attrs", "message"), [
    ({"strides": [2, 1]}, "strides [2, 1]; bnnflow builds convolutions with equal strides along "
                          "both axes"),
    ({"strides": [2, 2], "dilations": [2, 2]}, "dilations [2, 2]; bnnflow builds convolutions "
                                               "with dilations [1, 1] (train the network "
                                               "without dilation)"),
])
def test_conv_windows_bnnflow_cannot_build_are_named(attrs, message):
    from onnx import helper

    from bnnflow.model.qonnx_graph import QonnxError
    from bnnflow.model.qonnx_import_conv import conv_kernel

    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c0", kernel_shape=[3, 3], **attrs)
    with pytest.raises(QonnxError, match=r"^node c0 \(Conv\): " + re.escape(message)):
        conv_kernel(node)
    ok = helper.make_node("Conv", ["x", "w"], ["y"], name="c1", kernel_shape=[3, 2],
                          strides=[3, 3])
    assert conv_kernel(ok) == ((3, 2), 3, 0)


@pytest.mark.parametrize(("pads", "message"), [
    ([1, 0, 1, 0], "pads [1, 0, 1, 0]; bnnflow pads a convolution alike on all four sides (train "
                   "the network with one padding p for both axes)"),
    ([3, 3, 3, 3], "pads [3, 3, 3, 3]; bnnflow pads a 3x3 convolution by 0..2 (less than the "
                   "kernel)"),
])
def test_conv_padding_bnnflow_cannot_build_is_named(pads, message):
    from onnx import helper

    from bnnflow.model.qonnx_graph import QonnxError
    from bnnflow.model.qonnx_import_conv import conv_kernel

    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c0", kernel_shape=[3, 3], pads=pads)
    with pytest.raises(QonnxError, match=r"^node c0 \(Conv\): " + re.escape(message) + "$"):
        conv_kernel(node)
    even = helper.make_node("Conv", ["x", "w"], ["y"], name="c1", kernel_shape=[3, 3],
                            pads=[2, 2, 2, 2], strides=[2, 2])
    assert conv_kernel(even) == ((3, 3), 2, 2)


@pytest.mark.parametrize(("fill", "in_bits", "scale", "offset", "copies", "code"), [
    (-1.0, 1, 1.0, 0, 1, 0), (1.0, 1, 1.0, 0, 1, 1),     # a +-1 map: -1 is code 0, +1 code 1
    (0.0, 2, 0.25, 3, 1, 0),          # unsigned 2-bit levels (QuantReLU, scale 0.5): 0 is code 0
    (0.0, 8, 2.0 ** -8, -1, 1, 128),  # CNV's input q = (v - 1) / 2 (scale 2**-7): q = 0 at 128
    (129.0, 8, 0.5, 255, 1, 129),     # FINN's raw UINT8 levels a: pad_value a is code a
    (-0.5, 1, 0.25, 0, 2, 0),         # a narrow 2-bit Quant (s = 0.5): two bits, both 0
    # A float32 scale: 255 codes of 1/255, 0..1 (v + 255 = 2a, so scale 1/510): 1.0 is code 255
    # though 510 * float32(1/510) is 1 + 6e-8.
    (1.0, 8, float(np.float32(1 / 510)), 255, 1, 255),
])
def test_pad_code_is_the_code_worth_the_fill(fill, in_bits, scale, offset, copies, code):
    from onnx import helper

    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c0", kernel_shape=[3, 3])
    assert pad_code(node, fill, in_bits, scale, offset, copies) == code


@pytest.mark.parametrize(("op", "args", "message"), [
    ("Conv", (0.0, 1, 1.0), "pads [1, 1, 1, 1] with the value 0, which no input code has (codes "
                            "are worth -1, +1); a +-1 map has no 0 to pad with: train the "
                            "network with padding=0"),
    # zero of a narrow 2-bit Quant is one thermometer bit set of two: no pad code
    ("Conv", (0.0, 1, 0.25, 0, 2), "pads [1, 1, 1, 1] with the value 0, which no input code has "
                                   "(codes are worth -0.5, +0.5); train the network with "
                                   "padding=0"),
    ("Im2Col", (100.0, 8, 1.0), "pad_amount [1, 1, 1, 1] with pad_value 100, which no input code "
                                "has (codes are worth -255, -253, ..., +255); give pad_value the "
                                "value of an input code"),
])
def test_a_fill_that_is_no_input_code_is_refused_naming_the_fix(op, args, message):
    from onnx import helper

    from bnnflow.model.qonnx_graph import QonnxError

    attr = {"pads": [1] * 4} if op == "Conv" else {"pad_amount": [1] * 4}
    node = helper.make_node(op, ["x"], ["y"], name="p0", **attr)
    with pytest.raises(QonnxError, match=rf"^node p0 \({op}\): " + re.escape(message) + "$"):
        pad_code(node, *args)


def test_zero_padding_of_cnv_8_bit_input_imports_as_pad_code_128(digits, tmp_path, capsys):
    """Brevitas pads the quantized input with ``q = 0``: CNV's level ``a = q + 128``, so code
    128, not 127 or 0, gives Brevitas' classes."""
    net = brevitas_cnn(in_bits=8, padding=1)
    model = import_untrained_cnn(net, tmp_path, capsys)
    first = model.layers[0]
    assert (first.in_shape, first.out_shape[:2], first.pad, first.pad_value) == (
        (8, 8, 1), (8, 8), 1, 128)
    expected = brevitas_classes(net, digits.x_test / 16)
    assert np.array_equal(golden.run_images(model, digits.x_test).classes, expected)
    moved = BnnModel(layers=[dataclasses.replace(first, pad_value=127), *model.layers[1:]],
                     input=model.input)
    assert not np.array_equal(golden.run_images(moved, digits.x_test).classes, expected)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"padding": 1}, "(Conv): pads [1, 1, 1, 1] with the value 0, which no input code has "
                     "(codes are worth -1, +1); a +-1 map has no 0 to pad with: train the "
                     "network with padding=0\n"),
    ({"pool": "avg"}, "(AveragePool): is not imported; bnnflow import builds Conv (NCHW) and "
                      "MaxPool layers, or FINN's Im2Col and MaxPoolNHWC, "
                      "besides MatMul/Gemm\n"),
    ({"in_bits": 2}, "(Conv): reads a thermometer-coded input (a narrow-range n-bit Quant on "
                     "the input); bnnflow's conv layers read one bit or one n-bit pixel per "
                     "input value (a signed Quant without narrow range, as Brevitas CNV's "
                     "8-bit input)\n"),
    ({"pool": "ceil"}, "(MaxPool): ceil_mode 1; bnnflow builds max-pools over whole windows\n"),
    ({"weight_bits": 2, "out_bits": 2}, "(Gemm): the last layer reads its inputs twice "
                                        "(ternary weights), which is imported after a dense "
                                        "hidden layer only\n"),
])
def test_cnn_graphs_that_cannot_be_built_get_one_line(tmp_path, capsys, kwargs, message):
    path = export_brevitas(brevitas_cnn(**kwargs).eval(), tmp_path / "bad.onnx")
    capsys.readouterr()                                   # the exporter's own progress lines
    err = import_refused(capsys, path)
    assert err.startswith("error: node ") and err.endswith(message)
