"""Quantizer nodes as the import reads them (:mod:`bnnflow.model.qonnx_quant`): which bit
widths and signs are accepted, with one line for the rest; and a float activation scale in
front of the last layer named as the thing to change."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from bnnflow.model.qonnx_graph import QonnxError
from bnnflow.model.qonnx_quant import quant_scale

from .qonnx_fixtures import QONNX_DOMAIN, import_refused


def _init(name, value):
    value = np.asarray(value, dtype=np.float32)
    return helper.make_tensor(name, TensorProto.FLOAT, value.shape, value.ravel())


def _quant(bits, signed):
    from qonnx.core.modelwrapper import ModelWrapper

    node = helper.make_node("Quant", ["x", "s", "z", "b"], ["y"], name="q", domain=QONNX_DOMAIN,
                            signed=signed, narrow=0, rounding_mode="ROUND")
    graph = helper.make_graph([node], "g", [], [], initializer=[
        _init("s", 0.5), _init("z", 0.0), _init("b", float(bits))])
    return ModelWrapper(helper.make_model(graph)), node


def test_unsigned_weights_get_one_line():
    model, node = _quant(1, signed=0)
    with pytest.raises(QonnxError, match=r"^node q \(Quant\): unsigned 1-bit weights have no "
                                         r"level -1; bnnflow imports signed weight "
                                         r"quantizers$"):
        quant_scale(model, node)


@pytest.mark.parametrize(("bits", "signed"), [(9, 0), (9, 1), (2.5, 0)])
def test_activations_beyond_8_bits_get_one_line(bits, signed):
    model, node = _quant(bits, signed)
    with pytest.raises(QonnxError, match=rf"^node q \(Quant\): a {bits:g}-bit Quant; bnnflow "
                                         rf"imports activations of 1 to 8 bits$"):
        quant_scale(model, node, activation=True)


@pytest.mark.parametrize(("bits", "signed"), [(1, 0), (3, 0), (8, 0), (2, 1), (8, 1)])
def test_activations_of_1_to_8_bits_are_read(bits, signed):
    model, node = _quant(bits, signed)
    scale, got = quant_scale(model, node, activation=True)
    assert (float(scale), got) == (0.5, bits)


def test_a_float_activation_scale_before_the_last_layer_names_the_activations(tmp_path,
                                                                              capsys):
    """BipolarQuant -> MatMul -> unsigned 2-bit Quant of scale 0.3 -> MatMul: the last
    layer's scale 0.15 is not a power of two, and its weights' scale (1) is."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("BipolarQuant", ["x", "one"], ["xq"], domain=QONNX_DOMAIN,
                              name="in_quant"),
             helper.make_node("MatMul", ["xq", "w0"], ["z0"], name="fc0"),
             helper.make_node("Quant", ["z0", "s", "zero", "two"], ["a0"], name="act0",
                              domain=QONNX_DOMAIN, signed=0, narrow=0, rounding_mode="ROUND"),
             helper.make_node("MatMul", ["a0", "w1"], ["out"], name="fc1")]
    inits = [_init("one", 1.0), _init("zero", 0.0), _init("two", 2.0), _init("s", 0.3),
             _init("w0", np.where(rng.normal(size=(64, 16)) >= 0, 1.0, -1.0)),
             _init("w1", np.where(rng.normal(size=(16, 10)) >= 0, 1.0, -1.0))]
    graph = helper.make_graph(nodes, "float_act",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 10])],
                              initializer=inits)
    path = tmp_path / "float_act.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                      helper.make_opsetid(QONNX_DOMAIN, 1)]),
              str(path))
    err = import_refused(capsys, path)
    assert err.startswith("error: node ") and err.endswith(
        "(MatMul): the last layer's scale 0.15 is not a power of two: float rounding of its "
        "sums can break popcount ties against the lowest-index rule, so the class cannot be "
        "reproduced exactly; give the activations before it a power-of-two scale (Brevitas: "
        "restrict_scaling_type=RestrictValueType.POWER_OF_TWO on the QuantReLU or "
        "QuantIdentity)\n")
