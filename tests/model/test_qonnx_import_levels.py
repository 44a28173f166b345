"""``bnnflow import`` of Brevitas' bnn_pynq ``FC`` with 2-bit activations and a 2-bit input
and 2-bit (ternary) weights (FINN's TFC-w1a2 and -w2a2 families): each narrow-range level
quantizer becomes thermometer bits (the input a thermometer code, each hidden neuron two binary
neurons), ternary hidden weights stay ternary and a ternary output layer becomes binary over its
inputs taken twice, so the golden classes equal Brevitas' own; levels that are not symmetric
about 0 get one line."""

import numpy as np
import onnx
import pytest

from bnnflow.model import artifact, golden

from .qonnx_fixtures import (
    BREVITAS_WARNINGS,
    brevitas_bnn_pynq_fc,
    brevitas_classes,
    brevitas_relu_net,
    export_brevitas,
    import_refused,
    run_cli,
    train_brevitas,
)

pytestmark = BREVITAS_WARNINGS


def _exported_fc(tmp_path_factory, digits, weight_bits):
    """A bnn_pynq FC with 2-bit activations and input, trained 3 epochs on the digits and
    exported: ``(onnx path, Brevitas' test classes)``."""
    folder = tmp_path_factory.mktemp(f"w{weight_bits}a2")
    net = train_brevitas(brevitas_bnn_pynq_fc(weight_bits=weight_bits), digits.x_train / 16,
                         digits.y_train, epochs=3, batch=128)
    classes = brevitas_classes(net, digits.x_test / 16)
    return export_brevitas(net, folder / "fc.onnx"), classes


@pytest.fixture(scope="module")
def w1a2_run(tmp_path_factory, digits):
    """W1A2 with a 2-bit input (FINN's TFC-w1a2 family)."""
    return _exported_fc(tmp_path_factory, digits, 1)


@pytest.fixture(scope="module")
def w2a2_run(tmp_path_factory, digits):
    """The same FC with 2-bit (ternary) weights, W2A2 (FINN's TFC-w2a2 family)."""
    return _exported_fc(tmp_path_factory, digits, 2)


def test_w1a2_fc_imports_with_brevitas_classes(w1a2_run, digits, tmp_path, capsys):
    out = tmp_path / "w1a2.bnn"
    code, stdout, err = run_cli(capsys, "import", w1a2_run[0], "-o", out)
    assert (code, err) == (0, "")
    model = artifact.load(out)
    # 2-bit narrow levels -1, 0, +1 = two thermometer bits: the input (2x - 1 rounded)
    # reaches 0 at pixel 4 and +1 at pixel 13 of 16, and every hidden width doubles.
    assert model.input.encoding == {"kind": "thermometer", "scale": 16.0,
                                    "thresholds": [0.25, 0.8125]}
    assert model.widths == [128, 64, 48, 10]
    assert np.array_equal(golden.run_images(model, digits.x_test).classes, w1a2_run[1])
    assert "input bit 1 where pixel >= 4, 13 of 16" in stdout
    n = len(digits.x_test)
    assert f"{n} / {n} test images of digits have equal classes" in stdout


@pytest.mark.parametrize("run", ["w1a2_run", "w2a2_run"])
def test_imported_fc_matches_amaranth_hardware(run, request, tmp_path, capsys):
    out = tmp_path / "fc.bnn"
    assert run_cli(capsys, "import", request.getfixturevalue(run)[0], "-o", out)[0] == 0
    code, stdout, _ = run_cli(capsys, "verify", out, "--sim", "amaranth", "--images", "6",
                              "--fold", "auto", "--ii", "64")
    assert code == 0, stdout


def _with_attribute(path, out, op, name, value, on_weights=False):
    """``path`` with attribute ``name`` of every ``op`` node that has it set to ``value`` (with
    ``on_weights``, of those that quantize an initializer only)."""
    model = onnx.load(str(path))
    constants = {t.name for t in model.graph.initializer}
    for node in model.graph.node:
        if on_weights and node.input[0] not in constants:
            continue
        for attr in node.attribute:
            if node.op_type == op and attr.name == name:
                attr.i = value
    onnx.save(model, str(out))
    return out


def test_levels_without_narrow_range_import_as_levels_with_an_offset(w1a2_run, digits,
                                                                      tmp_path, capsys):
    """Brevitas' default signed quantizer (no narrow range): levels -2, -1, 0, +1 are ``a - 2``
    = ``(v - 1) / 2``: 2-bit levels with offset -1, which each next layer's thresholds absorb
    and constant neurons carry into the output layer (no thermometer doubling)."""
    path = _with_attribute(w1a2_run[0], tmp_path / "wide.onnx", "Quant", "narrow", 0)
    out = tmp_path / "wide.bnn"
    code, stdout, err = run_cli(capsys, "import", path, "-o", out)
    assert (code, err) == (0, "")
    n = len(digits.x_test)
    assert f"{n} / {n} test images of digits have equal classes" in stdout
    model = artifact.load(out)
    assert model.input.encoding["kind"] == "pixel_levels" and model.input.bits == 2
    assert [layer.activation_bits for layer in model.layers[:-1]] == [2, 2]
    assert model.widths[:2] == [64, 32] and model.widths[2] >= 24


def test_w2a2_fc_imports_with_brevitas_classes(w2a2_run, digits, tmp_path, capsys):
    out = tmp_path / "w2a2.bnn"
    code, stdout, err = run_cli(capsys, "import", w2a2_run[0], "-o", out)
    assert (code, err) == (0, "")
    model = artifact.load(out)
    # Hidden layers ternary; the output layer stays binary by reading the last hidden layer
    # twice (its 48 thermometer neurons repeated), w = (u1 + u2) / 2.
    assert [layer.kind for layer in model.layers] == ["ternary_dense", "ternary_dense",
                                                      "binary_dense"]
    assert model.widths == [128, 64, 96, 10]
    hidden = model.layers[1]
    assert np.array_equal(hidden.weights[:48], hidden.weights[48:])
    assert 0 < 1 - hidden.mask.mean() < 1                     # some weights are 0
    assert np.array_equal(golden.run_images(model, digits.x_test).classes, w2a2_run[1])


def test_weights_of_three_levels_only(w2a2_run, tmp_path, capsys):
    path = _with_attribute(w2a2_run[0], tmp_path / "w4.onnx", "Quant", "narrow", 0,
                           on_weights=True)
    err = import_refused(capsys, path)
    assert err.startswith("error: node ") and err.endswith(
        "(Quant): 2-bit weights without narrow range; bnnflow imports binary and ternary "
        "weights (BipolarQuant, 1-bit signed Quant, or 2-bit narrow-range Quant: -1, 0, +1)\n")


def test_narrow_4_bit_levels_import_as_levels(digits, tmp_path, capsys):
    """Narrow-range levels of 3 bits and more are n-bit levels with offset +1 (q = a - 7), not
    14 thermometer bits each: the widths stay the network's, plus the constant neurons.
    (bnn_pynq's own 4-bit quantizer has the scale 1/7, whose rounding is refused with one
    line; this MLP has power-of-two scales.)"""
    net = train_brevitas(brevitas_relu_net(bits=4, signed=True, narrow=True),
                         digits.x_train / 16, digits.y_train, epochs=3)
    path = export_brevitas(net, tmp_path / "narrow4.onnx")
    capsys.readouterr()
    out = tmp_path / "narrow4.bnn"
    code, stdout, err = run_cli(capsys, "import", path, "-o", out, "--input-scale", "16")
    assert (code, err) == (0, "")
    model = artifact.load(out)
    assert [layer.activation_bits for layer in model.layers[:-1]] == [4, 4]
    assert model.widths[:2] == [64, 48] and 32 <= model.widths[2] < 64
    assert model.provenance.get("offset_neurons", {"offset": 1})["offset"] == 1
    assert np.array_equal(golden.run_images(model, digits.x_test).classes,
                          brevitas_classes(net, digits.x_test / 16))


def test_narrow_3_bit_input_becomes_3_bit_pixel_levels(digits, tmp_path, capsys):
    """bnn_pynq's IN_BIT_WIDTH 3: one 3-bit element per pixel (levels -3..3 read as a = q + 3,
    offset +1), not a thermometer code of 6 bits."""
    net = train_brevitas(brevitas_bnn_pynq_fc(weight_bits=1, act_bits=2, in_bits=3),
                         digits.x_train / 16, digits.y_train, epochs=3, batch=128)
    path = export_brevitas(net, tmp_path / "in3.onnx")
    capsys.readouterr()
    out = tmp_path / "in3.bnn"
    code, stdout, err = run_cli(capsys, "import", path, "-o", out)
    assert (code, err) == (0, "")
    model = artifact.load(out)
    assert model.input.encoding["kind"] == "pixel_levels" and model.input.bits == 3
    assert model.layers[0].in_width == 64
    assert np.array_equal(golden.run_images(model, digits.x_test).classes,
                          brevitas_classes(net, digits.x_test / 16))
