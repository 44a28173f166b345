"""``bnnflow import`` of activation levels with an offset: Brevitas' ``QuantReLU`` (``Relu`` then
an unsigned ``Quant``), its default signed ``QuantIdentity`` (no narrow range) and FINN's
``MultiThreshold`` without the bipolar bias. Hidden layers absorb the offset of the levels into
their thresholds; the output layer gets it from constant neurons
(:mod:`bnnflow.model.qonnx_offset`). The golden classes equal Brevitas' own; what cannot be
imported exactly gets one line naming the fix."""

import numpy as np
import onnx
import pytest
from onnx import helper

from bnnflow.model import artifact, golden
from bnnflow.model.qonnx_export import export_graph

from .qonnx_fixtures import (
    BREVITAS_WARNINGS,
    brevitas_classes,
    brevitas_relu_net,
    export_brevitas,
    import_refused,
    run_cli,
    train_brevitas,
)
from .test_qonnx_export import _digits_model

pytestmark = BREVITAS_WARNINGS


def _exported(folder, digits, **kwargs):
    """A :func:`brevitas_relu_net` trained 3 epochs on the digits and exported: ``(onnx path,
    Brevitas' test classes)``."""
    net = train_brevitas(brevitas_relu_net(**kwargs), digits.x_train / 16, digits.y_train,
                         epochs=3)
    return (export_brevitas(net, folder / "relu.onnx"),
            brevitas_classes(net, digits.x_test / 16))


@pytest.fixture(scope="module")
def relu_mlp(tmp_path_factory, digits):
    """2-bit QuantReLU, the first one with a learned float scale."""
    return _exported(tmp_path_factory.mktemp("relu_mlp"), digits, bits=2, float_scale=True)


@pytest.fixture(scope="module")
def relu_uint4(tmp_path_factory, digits):
    """The MLP with an unsigned 4-bit input quantizer (levels s * a of the pixels)."""
    return _exported(tmp_path_factory.mktemp("relu_uint4"), digits, bits=2, in_bits=4)


@pytest.fixture(scope="module")
def signed_mlp(tmp_path_factory, digits):
    """Brevitas' default signed 3-bit QuantIdentity (levels -4..3) in place of each QuantReLU,
    with power-of-two scales: with a learned float scale the import is exact or refused
    depending on the trained values, which differ from CPU to CPU (relu_mlp has one)."""
    return _exported(tmp_path_factory.mktemp("signed_mlp"), digits, bits=3, signed=True)


@pytest.fixture(scope="module")
def relu_cnn(tmp_path_factory, digits):
    """A conv layer with a 2-bit QuantReLU, max-pooled, then two dense layers."""
    return _exported(tmp_path_factory.mktemp("relu_cnn"), digits, bits=2, conv=True)


def _import(capsys, path, out):
    code, stdout, err = run_cli(capsys, "import", path, "-o", out, "--input-scale", "16")
    assert (code, err) == (0, ""), err
    return artifact.load(out), stdout


@pytest.mark.parametrize("run", ["relu_mlp", "relu_uint4", "signed_mlp", "relu_cnn"])
def test_quant_relu_network_imports_with_brevitas_classes(run, request, digits, tmp_path,
                                                          capsys):
    path, classes = request.getfixturevalue(run)
    model, stdout = _import(capsys, path, tmp_path / "relu.bnn")
    n = len(digits.x_test)
    assert f"{n} / {n} test images of digits have equal classes" in stdout
    assert np.array_equal(golden.run_images(model, digits.x_test).classes, classes)
    hidden = [layer for layer in model.layers[:-1] if not hasattr(layer, "window")]
    bits = 3 if run == "signed_mlp" else 2
    assert all(layer.activation_bits == bits for layer in hidden)
    # the last hidden layer gains constant neurons for the output's offset: unsigned levels
    # (d = L) at level L (thresholds 0), signed ones (d = -1) at level (L + 1) / 2
    last = model.layers[-2]
    width = 24 if run == "relu_cnn" else 32
    extra = last.out_width - width
    level = 4 if run == "signed_mlp" else 3
    assert extra > 0 and np.all(last.thresholds[width:, :level] == 0)
    assert np.all(last.thresholds[width:, level:] > last.max_count)
    offset = -1 if run == "signed_mlp" else 3
    assert model.provenance["offset_neurons"] == {"layer": last.name, "offset": offset,
                                                  "count": extra}
    assert (f"{last.name}: {extra} constant neurons added to carry the output layer's per-class "
            f"offset (its inputs are levels with offset {offset})") in stdout
    assert model.layers[-1].in_width == last.out_width
    if run == "relu_uint4":
        # one 4-bit element per pixel, a = q (q_min 0): the first layer absorbs 15 * sum w
        assert model.input.encoding["kind"] == "pixel_levels"
        assert model.input.bits == 4 == model.layers[0].in_bits


def test_imported_quant_relu_network_matches_amaranth_hardware(relu_cnn, tmp_path, capsys):
    out = tmp_path / "relu.bnn"
    _import(capsys, relu_cnn[0], out)
    code, stdout, _ = run_cli(capsys, "verify", out, "--sim", "amaranth", "--images", "5",
                              "--fold", "auto", "--ii", "512", "--stall", "0.3")
    assert code == 0, stdout


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"bits": 1}, "node node__symbolic_2 (BipolarQuant): a bipolar quantizer after a Relu gives "
                  "+1 for every input (a 1-bit QuantReLU, as Brevitas exports it); use a "
                  "QuantReLU of 2 or more bits, or a signed binary activation"),
    ({"bits": 4, "float_scale": True, "seed": 1},
     "cannot import it exactly; give the activations before it a power-of-two scale "
     "(Brevitas: restrict_scaling_type=RestrictValueType.POWER_OF_TWO on the QuantReLU or "
     "QuantIdentity)"),
])
def test_quant_relu_that_cannot_be_imported_gets_one_line(kwargs, message, digits, tmp_path,
                                                          capsys):
    path, _ = _exported(tmp_path, digits, **kwargs)
    capsys.readouterr()                             # torch.onnx's progress lines
    assert message in import_refused(capsys, path, "--input-scale", "16")


def test_unsigned_levels_of_a_map_before_the_output_get_one_line(digits, tmp_path, capsys):
    # the output layer reads the pooled map's unsigned levels directly
    path, _ = _exported(tmp_path, digits, bits=2, conv=True, hidden_dense=False)
    capsys.readouterr()
    err = import_refused(capsys, path, "--input-scale", "16")
    assert err.endswith("reads levels with an offset (unsigned, or signed without narrow "
                        "range) of a map; their per-class offset is carried by constant "
                        "neurons of a dense hidden layer, so put a dense layer before the "
                        "output\n")


def _unsigned_thresholds(tmp_path, bias_of_scale):
    """export-qonnx's graph of a 2-bit model with every MultiThreshold's ``out_bias`` set to
    ``bias_of_scale * out_scale``: levels ``out_scale * a`` for 0 (FINN's unsigned ReLU)."""
    model = _digits_model([64, 24, 17, 10], seed=3, act_bits=2)
    graph = export_graph(model).model
    for node in graph.graph.node:
        if node.op_type == "MultiThreshold":
            attrs = {a.name: a for a in node.attribute}
            scale = attrs["out_scale"].f
            node.attribute.remove(attrs["out_bias"])
            node.attribute.append(helper.make_attribute("out_bias", bias_of_scale * scale))
    path = tmp_path / "unsigned.onnx"
    onnx.save(graph, str(path))
    return path, model


def test_unsigned_multithreshold_levels_import_exactly(digits, tmp_path, capsys):
    path, source = _unsigned_thresholds(tmp_path, 0.0)
    model, stdout = _import_encoded(capsys, path, tmp_path / "unsigned.bnn")
    # the check against qonnx's executor of the changed graph is the reference
    n = len(digits.x_test)
    assert f"{n} / {n} test images of digits have equal classes" in stdout
    assert model.widths[:2] == source.widths[:2] and model.widths[2] > 17
    # fc1 reads fc0's levels as s * a = c * (2a - 3 + 3): its thresholds absorb 3 * sum w,
    # fc0 itself (reading the symmetric input) keeps its own
    assert np.array_equal(model.layers[0].thresholds, source.layers[0].thresholds)
    assert not np.array_equal(model.layers[1].thresholds[:17], source.layers[1].thresholds)


def _import_encoded(capsys, path, out):
    code, stdout, err = run_cli(capsys, "import", path, "-o", out)
    assert (code, err) == (0, ""), err
    return artifact.load(out), stdout


def test_multithreshold_with_a_fractional_offset_gets_one_line(tmp_path, capsys):
    path, _ = _unsigned_thresholds(tmp_path, 0.25)
    err = import_refused(capsys, path)
    assert err.endswith("do not give levels c * (2a - 3 + d) with an integer d and a "
                        "power-of-two c; bnnflow needs out_bias a multiple of out_scale / 2 "
                        "(FINN's bipolar levels: 2 and -1)\n")


def test_ternary_output_weights_after_unsigned_levels(digits, tmp_path, capsys):
    """The last hidden layer is read twice (ternary output weights become binary over [y, y]),
    then gains the constant neurons for the offset of the doubled output layer."""
    path, classes = _exported(tmp_path, digits, bits=2, ternary_out=True)
    capsys.readouterr()
    model, stdout = _import(capsys, path, tmp_path / "tern.bnn")
    assert np.array_equal(golden.run_images(model, digits.x_test).classes, classes)
    last = model.layers[-2]
    assert np.array_equal(last.weights[:32], last.weights[32:64])
    extra = model.provenance["offset_neurons"]["count"]
    assert last.out_width == 64 + extra and extra > 0
    assert np.all(last.thresholds[64:] == 0)


def test_a_relu_in_the_input_stage_imports(tmp_path, capsys, digits):
    """input -> Relu -> unsigned 2-bit Quant (scale 1/4): 2-bit pixel levels, offset 3 into
    the first layer (a Relu there once crashed the input stage's constant check)."""
    from onnx import TensorProto

    from .qonnx_fixtures import QONNX_DOMAIN

    rng = np.random.default_rng(0)

    def init(name, value):
        value = np.asarray(value, dtype=np.float32)
        return helper.make_tensor(name, TensorProto.FLOAT, value.shape, value.ravel())

    nodes = [helper.make_node("Relu", ["x"], ["xr"], name="relu_in"),
             helper.make_node("Quant", ["xr", "s_in", "zero", "two"], ["xq"], name="in_quant",
                              domain=QONNX_DOMAIN, signed=0, narrow=0, rounding_mode="ROUND"),
             helper.make_node("MatMul", ["xq", "w0"], ["z0"], name="fc0"),
             helper.make_node("BatchNormalization", ["z0", "g", "b", "m", "v"], ["y0"],
                              name="bn0"),
             helper.make_node("BipolarQuant", ["y0", "one"], ["a0"], domain=QONNX_DOMAIN,
                              name="act0"),
             helper.make_node("MatMul", ["a0", "w1"], ["out"], name="fc1")]
    inits = [init("one", 1.0), init("zero", 0.0), init("two", 2.0), init("s_in", 0.25),
             init("w0", np.where(rng.normal(size=(64, 16)) >= 0, 1.0, -1.0)),
             init("g", rng.uniform(0.5, 1.5, 16)), init("b", rng.normal(size=16)),
             init("m", rng.normal(size=16) * 4), init("v", rng.uniform(1, 2, 16)),
             init("w1", np.where(rng.normal(size=(16, 10)) >= 0, 1.0, -1.0))]
    graph = helper.make_graph(nodes, "relu_in",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 10])],
                              initializer=inits)
    path = tmp_path / "relu_in.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                      helper.make_opsetid(QONNX_DOMAIN, 1)]),
              str(path))
    model, stdout = _import(capsys, path, tmp_path / "relu_in.bnn")
    n = len(digits.x_test)
    assert f"{n} / {n} test images of digits have equal classes" in stdout
    assert model.input.encoding["kind"] == "pixel_levels" and model.input.bits == 2
