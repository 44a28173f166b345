"""The bias of a layer node (``Gemm`` C times ``beta``, ``Conv`` B): Brevitas' default float
biases on hidden layers import exactly, folded into the thresholds within their rounding; a
bias in the last layer, or one that is not a constant, gets one line."""

import numpy as np
import pytest
from onnx import TensorProto, helper

from bnnflow.model import artifact, golden
from bnnflow.model.qonnx_graph import QonnxError
from bnnflow.model.qonnx_weights import layer_bias

from .qonnx_fixtures import (
    BREVITAS_WARNINGS,
    brevitas_bias_net,
    brevitas_classes,
    export_brevitas,
    import_refused,
    run_cli,
    train_brevitas,
)

pytestmark = BREVITAS_WARNINGS


def _wrapper(op, bias, **attrs):
    from qonnx.core.modelwrapper import ModelWrapper

    inputs = ["x", "w"] + ([] if bias is None else ["b"])
    node = helper.make_node(op, inputs, ["y"], name="layer", **attrs)
    inits = [] if bias is None or isinstance(bias, str) else [
        helper.make_tensor("b", TensorProto.FLOAT, np.shape(bias), np.ravel(bias))]
    graph = helper.make_graph([node], "g", [], [], initializer=inits)
    return ModelWrapper(helper.make_model(graph)), node


@pytest.mark.parametrize(("op", "bias", "attrs", "want"), [
    ("Gemm", [0.5, -1.0, 2.0], {}, [0.5, -1.0, 2.0]),
    ("Gemm", [0.5, -1.0, 2.0], {"beta": 2.0}, [1.0, -2.0, 4.0]),
    ("Conv", [0.25, 0.0], {}, [0.25, 0.0]),
    ("Gemm", [0.0, 0.0], {}, None),
    ("Gemm", None, {}, None),
    ("MatMul", None, {}, None),
])
def test_layer_bias_per_neuron(op, bias, attrs, want):
    model, node = _wrapper(op, bias, **attrs)
    got = layer_bias(model, node)
    assert (got is None) if want is None else np.array_equal(got, want)


def test_a_bias_from_a_node_gets_one_line():
    model, node = _wrapper("Gemm", "computed")
    with pytest.raises(QonnxError, match=r"^node layer \(Gemm\): the bias must be a constant "
                                         r"\(Brevitas: a float bias, bias_quant=None\)$"):
        layer_bias(model, node)


@pytest.fixture(scope="module")
def bias_run(tmp_path_factory, digits):
    net = train_brevitas(brevitas_bias_net(), digits.x_train / 16, digits.y_train, epochs=3)
    path = export_brevitas(net, tmp_path_factory.mktemp("bias") / "bias.onnx")
    return path, brevitas_classes(net, digits.x_test / 16)


def test_hidden_biases_import_with_brevitas_classes(bias_run, digits, tmp_path, capsys):
    from bnnflow.model.qonnx_graph import load_graph

    graph = load_graph(bias_run[0])
    assert {n.op_type: len(n.input) for n in graph.graph.node if n.op_type in
            ("Conv", "Gemm") and len(n.input) == 3} == {"Conv": 3, "Gemm": 3}
    out = tmp_path / "bias.bnn"
    code, stdout, err = run_cli(capsys, "import", bias_run[0], "-o", out, "--input-scale", "16")
    assert (code, err) == (0, "")
    n = len(digits.x_test)
    assert f"{n} / {n} test images of digits have equal classes" in stdout
    model = artifact.load(out)
    assert np.array_equal(golden.run_images(model, digits.x_test).classes, bias_run[1])


def test_a_bias_in_the_last_layer_gets_one_line(digits, tmp_path, capsys):
    net = train_brevitas(brevitas_bias_net(out_bias=True), digits.x_train / 16, digits.y_train,
                         epochs=1)
    path = export_brevitas(net, tmp_path / "out_bias.onnx")
    capsys.readouterr()
    err = import_refused(capsys, path, "--input-scale", "16")
    assert err.endswith("(Gemm): a bias in the last layer moves each class's score by its own "
                        "amount, which bnnflow's popcount output cannot carry; build the last "
                        "layer without one (Brevitas: QuantLinear(bias=False))\n")
