"""The bias of a layer node (``Gemm`` C times ``beta``, ``Conv`` B): Brevitas' default float
biases on hidden layers import exactly, folded into the thresholds within their rounding;
Brevitas' ``Int32Bias`` in every layer too, the last layer's carried by constant neurons
(tests/model/test_qonnx_offset.py and test_qonnx_bias.py have the arithmetic), and a float
bias in the last layer (the hidden layer read as often as its fractions need); a bias that is
neither a constant nor a Quant of one, or one within the float rounding of a comparison
between classes, gets one line."""

import re

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
    brevitas_conv_out_net,
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
    with pytest.raises(QonnxError, match=r"^node layer \(Gemm\): the bias must be a constant or a "
                                         r"Quant of one \(Brevitas: bias_quant=None or "
                                         r"Int32Bias\)$"):
        layer_bias(model, node)
    # a (N, 1) C broadcasts to a matrix, not one value per neuron (onnxruntime fails on it)
    model, node = _wrapper("Gemm", np.ones((3, 1)))
    with pytest.raises(QonnxError, match=r"^node layer \(Gemm\): the bias has shape \(3, 1\); a "
                                         r"bias has one value per output \(shape \(N,\) or "
                                         r"\(1, N\)\) or one for all$"):
        layer_bias(model, node)


@pytest.fixture(scope="module", params=[(1, None), (3, None), (4, "int32")],
                ids=["binary", "3-bit", "4-bit-int32"])
def bias_run(request, tmp_path_factory, digits):
    """W1A1, and with Brevitas' default signed 3-bit QuantIdentity activations, float biases;
    4-bit activations with Int32Bias biases. (With 4-bit activations and float biases the dense
    layer's 288 inputs make sums up to 1152 whose rounding, 2**-13, reaches a decision of this
    network: refused, as test_a_decision_within_the_rounding_of_the_bias_... shows on a small
    graph; Int32Bias sums are exact.)"""
    act_bits, bias_quant = request.param
    net = train_brevitas(brevitas_bias_net(act_bits=act_bits, bias_quant=bias_quant),
                         digits.x_train / 16, digits.y_train, epochs=3)
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


def _imported(net, digits, tmp_path, capsys, name):
    """``(model, stdout, Brevitas' classes)`` of ``net`` exported and imported (which must
    succeed)."""
    path = export_brevitas(net, tmp_path / f"{name}.onnx")
    want = brevitas_classes(net, digits.x_test / 16)
    assert len(np.unique(want)) > 1
    out = tmp_path / f"{name}.bnn"
    code, stdout, err = run_cli(capsys, "import", path, "-o", out, "--input-scale", "16")
    assert (code, err) == (0, "")
    return artifact.load(out), stdout, want


@pytest.mark.parametrize("act_bits", [1, 2])
def test_a_float_bias_in_the_last_layer_imports_with_brevitas_classes(act_bits, digits,
                                                                      tmp_path, capsys):
    # seed 2 for 2 bits: trained on one torch thread, seeds 0 and 1 put two classes' float
    # biases within their rounding of each other, which the import rightly refuses
    net = train_brevitas(brevitas_bias_net(out_bias=True, act_bits=act_bits,
                                           seed=0 if act_bits == 1 else 2),
                         digits.x_train / 16, digits.y_train, epochs=3)
    model, stdout, want = _imported(net, digits, tmp_path, capsys, "out_bias")
    extra = model.provenance["bias_neurons"]
    # fractions need several reads: the 32 neurons' levels become `factor` times the old
    # (binary: 0 or 2**n - 1; 2-bit signed levels, offset -1: 5 or 21 times)
    assert extra["layer"] == "fc1" and extra["factor"] > 1
    assert (1 << extra["bits"]) - 1 == extra["factor"] * ((1 << act_bits) - 1)
    offset = model.provenance.get("offset_neurons", {}).get("count", 0)
    assert model.layers[1].out_width == 32 + offset + extra["count"]
    assert model.layers[1].activation_bits == model.layers[2].in_bits == extra["bits"]
    what = (f"0 or {extra['factor']}" if act_bits == 1
            else f"{extra['factor']} times the old ones")
    assert (f"fc1: levels widened to {extra['bits']} bits ({what}: the output layer weighs "
            f"each input {extra['factor']} times) and {extra['count']} constant neurons added "
            f"to carry the output layer's bias") in stdout
    assert np.array_equal(golden.run_images(model, digits.x_test).classes, want)


@pytest.mark.parametrize("pool", [False, True], ids=["conv", "conv-pool"])
def test_a_float_bias_after_a_map_imports_with_brevitas_classes(pool, digits, tmp_path, capsys):
    import torch

    net = train_brevitas(brevitas_conv_out_net(pool), digits.x_train / 16, digits.y_train,
                         epochs=3)
    with torch.no_grad():
        # Fractions a quarter apart: trained biases differ from CPU to CPU, and two classes'
        # sums that come within float rounding of each other are refused (rightly; one
        # machine's training did that), which is not what this test is about.
        net.body[-2].bias.copy_(torch.tensor([0.25, -0.75, 1.25, 0.5, -1.5, 2.25, -0.25, 0.75,
                                              -1.25, 1.75]))
    model, stdout, want = _imported(net, digits, tmp_path, capsys, "conv_out")
    extra = model.provenance["bias_neurons"]
    # the 8 binary channels become n-bit levels, and constant channels join them
    assert extra["layer"] == "conv0" and extra["bits"] > 1 and extra["channels"] >= 1
    assert model.layers[0].out_shape[2] == 8 + extra["channels"]
    assert model.layers[-1].in_bits == extra["bits"]
    assert "conv0: levels widened to " in stdout and "constant channel" in stdout
    assert np.array_equal(golden.run_images(model, digits.x_test).classes, want)


@pytest.mark.parametrize("falling", [False, True], ids=["rising", "falling"])
def test_int32_biases_in_every_layer_import_with_brevitas_classes(falling, digits, tmp_path,
                                                                  capsys):
    import torch

    net = train_brevitas(brevitas_bias_net(out_bias=True, bias_quant="int32"),
                         digits.x_train / 16, digits.y_train, epochs=3)
    with torch.no_grad():   # trained output biases round to 0 on scale 1: give it steps
        net.body[8].bias.copy_(torch.tensor([4.0, 2, 0, -3, -2, -5, -5, -5, -4, 3]))
        if falling:         # a TensorNorm with a negative weight reverses the scores
            net.body[9].weight.fill_(-0.5)
    model, stdout, want = _imported(net, digits, tmp_path, capsys, "int32")
    # steps of both parities, half a popcount apart: 3 reads (2-bit levels 0 or 3) of the 32
    # hidden neurons, then the constant ones
    extra = model.provenance["bias_neurons"]
    assert extra["layer"] == "fc1" and extra["bits"] == 2 and extra["factor"] == 3
    assert f"64-288-{32 + extra['count']}-10" in stdout
    assert (f"fc1: levels widened to 2 bits (0 or 3: the output layer weighs each input 3 "
            f"times) and {extra['count']} constant neurons added") in stdout
    assert np.array_equal(golden.run_images(model, digits.x_test).classes, want)


def _biased_graph(path, bias, out_add=None):
    """x (64) -> BipolarQuant -> Gemm (+-1 weights, bias ``bias`` on every neuron) ->
    BipolarQuant -> MatMul (10 classes), then with ``out_add`` an ``Add`` of those 10 values
    (a bias as qonnx's Keras converter writes it)."""
    import onnx

    from .qonnx_fixtures import QONNX_DOMAIN

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("BipolarQuant", ["x", "one"], ["xq"], domain=QONNX_DOMAIN,
                              name="in_quant"),
             helper.make_node("Gemm", ["xq", "w0", "b0"], ["z0"], name="fc0"),
             helper.make_node("BipolarQuant", ["z0", "one"], ["a0"], domain=QONNX_DOMAIN,
                              name="act0"),
             helper.make_node("MatMul", ["a0", "w1"], ["out" if out_add is None else "z1"],
                              name="fc1")]
    if out_add is not None:
        nodes.append(helper.make_node("Add", ["z1", "b1"], ["out"], name="bias1"))

    def init(name, value):
        value = np.asarray(value, dtype=np.float32)
        return helper.make_tensor(name, TensorProto.FLOAT, value.shape, value.ravel())

    inits = [init("one", 1.0), init("w0", np.where(rng.normal(size=(64, 16)) >= 0, 1.0, -1.0)),
             init("b0", np.full(16, bias)),
             init("w1", np.where(rng.normal(size=(16, 10)) >= 0, 1.0, -1.0))]
    if out_add is not None:
        inits.append(init("b1", out_add))
    graph = helper.make_graph(nodes, "biased",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 10])],
                              initializer=inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                      helper.make_opsetid(QONNX_DOMAIN, 1)]),
              str(path))
    return path


def test_a_decision_within_the_rounding_of_the_bias_gets_one_line(tmp_path, capsys):
    # dot 0 is reachable (64 inputs): 0 + 2**-20 is within float32's rounding of sums near 64
    err = import_refused(capsys, _biased_graph(tmp_path / "tiny.onnx", 2.0 ** -20))
    assert err.endswith("(BipolarQuant): neuron 0: its output changes within the float "
                        "rounding of adding its bias 9.53674e-07 to the products, which depends "
                        "on the runtime's order of additions; cannot import it exactly; "
                        "quantize the bias on the layer's scale (Brevitas: "
                        "bias_quant=Int32Bias) or train the layer without one (bias=False; the "
                        "BatchNorm after it has one)\n")
    # a bias of 0.5 is 2**16 units in the last place from every decision: imported
    out = tmp_path / "half.bnn"
    code, stdout, err = run_cli(capsys, "import", _biased_graph(tmp_path / "half.onnx", 0.5),
                                "-o", out)
    assert (code, err) == (0, "")
    # digits pixels (0..16) are all >= 0, the graph's sign threshold: one input, said so
    assert "note: the 359 test images of digits encode to 1 distinct input, so the agreement " \
        "below checks that one only; --input-scale and --input-offset say how pixels map to " \
        "the graph's input\n" in stdout
    # dot + 0.5 >= 0 for dot >= 0: popcount >= 32 of 64
    assert np.all(artifact.load(out).layers[0].thresholds == 32)


def test_an_add_after_the_last_matmul_is_its_bias(tmp_path, capsys, digits):
    # 16 binary inputs: dots are even, so odd steps are half a popcount away from even ones
    steps = [3.0, -2.0, 0.0, 5.0, 1.0, -4.0, 2.0, 0.0, -1.0, 6.0]
    out = tmp_path / "add.bnn"
    # pixels - 0.5 * 16 into the graph's sign: 359 different inputs to agree on
    centre = ("--input-offset", "0.5")
    code, stdout, err = run_cli(capsys, "import", _biased_graph(tmp_path / "add.onnx", 0.0,
                                                                steps), "-o", out, *centre)
    assert (code, err) == (0, "") and "note:" not in stdout
    n = len(digits.x_test)
    assert f"{n} / {n} test images of digits have equal classes" in stdout
    # both parities: the 16 hidden neurons read 3 times (2-bit levels 0 or 3), then 14
    # constant ones (the steps span 5 popcounts, at most 15 at 3 reads)
    assert "64-30-10" in stdout
    assert "fc0: levels widened to 2 bits (0 or 3: the output layer weighs each input 3 " \
        "times) and 14 constant neurons added" in stdout
    # a float bias: 0.1 and 2.1 tie at popcounts 1 apart, within the rounding of their sums
    err = import_refused(capsys, _biased_graph(tmp_path / "tie.onnx", 0.0,
                                               [0.1, 2.1] + steps[2:]), *centre)
    assert re.search(r"\(MatMul\): the last layer's classes 0 and 1 come \S+ apart at "
                     r"popcounts p0 - p1 = 1, within the float rounding \(\S+\) of adding "
                     r"their biases 0\.1 and 2\.1, .* bias_quant=Int32Bias", err)
    # one value per class only: a (10, 1) Add broadcasts the scores to a matrix
    err = import_refused(capsys, _biased_graph(tmp_path / "column.onnx", 0.0,
                                               np.reshape(steps, (10, 1))))
    assert err.endswith("(Add): adds to the scores a constant of shape (10, 1); a bias has one "
                        "value per output (shape (N,) or (1, N)) or one for all\n")
    # 5 values for 10 classes and no output shape declared: qonnx cannot shape the graph
    import onnx

    path = _biased_graph(tmp_path / "five.onnx", 0.0, steps[:5])
    proto = onnx.load(path)
    proto.graph.output[0].type.tensor_type.ClearField("shape")
    onnx.save(proto, path)
    assert "qonnx cannot give the graph a batch size (IndexError: " in import_refused(capsys,
                                                                                     path)
    # equal float biases: the Add rounds each sum once, alike, so equal dots still tie
    code, stdout, err = run_cli(capsys, "import", _biased_graph(tmp_path / "equal.onnx", 0.0,
                                                                [0.37] * 10),
                                "-o", tmp_path / "equal.bnn", *centre)
    assert (code, err) == (0, "") and f"{n} / {n} test images of digits" in stdout
    # clear of every tie: imported, the graph's classes on every image
    code, stdout, err = run_cli(capsys, "import", _biased_graph(tmp_path / "float.onnx", 0.0,
                                                                [0.1, 2.3] + steps[2:]),
                                "-o", tmp_path / "float.bnn", *centre)
    assert (code, err) == (0, "") and f"{n} / {n} test images of digits" in stdout
