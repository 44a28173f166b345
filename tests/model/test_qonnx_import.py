"""``bnnflow import``: a Brevitas W1A1 MLP exported with ``export_qonnx`` becomes a .bnn model
whose golden classes equal Brevitas' own eval; graphs that cannot be built exactly are refused
with one line and exit status 2."""

import hashlib

import numpy as np
import onnx
import pytest

from bnnflow.model import artifact, golden
from bnnflow.model.qonnx_graph import load_graph

from .qonnx_fixtures import (
    BREVITAS_WARNINGS,
    brevitas_classes,
    brevitas_mlp,
    export_brevitas,
    run_cli,
    tiny_graph,
    train_brevitas,
)

pytestmark = BREVITAS_WARNINGS


@pytest.fixture(scope="module")
def brevitas_run(tmp_path_factory, digits):
    """A trained and exported Brevitas 64-32-10 MLP: ``(onnx path, Brevitas' test classes)``."""
    folder = tmp_path_factory.mktemp("brevitas")
    net = train_brevitas(brevitas_mlp(), digits.x_train / 16, digits.y_train, epochs=2,
                         batch=128)
    classes = brevitas_classes(net, digits.x_test / 16)
    return export_brevitas(net, folder / "mlp.onnx"), classes, net


def test_torchscript_export_form_imports_too(brevitas_run, digits, tmp_path, capsys):
    path = export_brevitas(brevitas_run[2], tmp_path / "ts.onnx", dynamo=False)
    code, _, err = run_cli(capsys, "import", path, "-o", tmp_path / "ts.bnn")
    assert (code, err) == (0, "")
    model = artifact.load(tmp_path / "ts.bnn")
    assert np.array_equal(golden.run_images(model, digits.x_test).classes, brevitas_run[1])


def test_brevitas_mlp_imports_with_brevitas_classes(brevitas_run, digits, tmp_path, capsys):
    path, expected, _ = brevitas_run
    out = tmp_path / "mlp.bnn"
    code, stdout, err = run_cli(capsys, "import", path, "-o", out)
    assert (code, err) == (0, "")
    model = artifact.load(out)
    assert model.widths == [64, 32, 10]
    assert model.input.encoding == {"kind": "threshold", "scale": 16.0, "threshold": 0.5}
    classes = golden.run_images(model, digits.x_test).classes
    assert np.array_equal(classes, expected)
    n = len(digits.x_test)
    assert f"{n} / {n} test images of digits have equal classes" in stdout
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert model.provenance["source_sha256"] == f"sha256:{digest}"
    assert model.provenance["agreement"]["equal_classes"] == n


def test_imported_brevitas_mlp_matches_amaranth_hardware(brevitas_run, tmp_path, capsys):
    out = tmp_path / "mlp.bnn"
    assert run_cli(capsys, "import", brevitas_run[0], "-o", out)[0] == 0
    code, stdout, _ = run_cli(capsys, "verify", out, "--sim", "amaranth", "--images", "8",
                           "--fold", "auto", "--ii", "16")
    assert code == 0, stdout


@pytest.mark.slow
def test_imported_brevitas_mlp_matches_verilator_on_all_images(brevitas_run, tmp_path,
                                                               capsys):
    out = tmp_path / "mlp.bnn"
    assert run_cli(capsys, "import", brevitas_run[0], "-o", out)[0] == 0
    code, stdout, _ = run_cli(capsys, "verify", out, "--sim", "verilator-direct", "--images",
                           "all")
    assert code == 0, stdout


def test_output_layer_scale_that_is_not_a_power_of_two_is_refused(brevitas_run, tmp_path,
                                                                  capsys):
    model = load_graph(brevitas_run[0])
    gemm = model.get_nodes_by_op_type("Gemm")[-1]
    quant = model.find_producer(gemm.input[1])
    model.set_initializer(quant.input[1], np.array(0.1, dtype=np.float32))
    model.save(str(tmp_path / "scaled.onnx"))
    code, _, err = run_cli(capsys, "import", tmp_path / "scaled.onnx", "-o", tmp_path / "x.bnn")
    assert code == 2
    assert err == (f"error: node {gemm.name} (Gemm): the last layer's scale 0.1 is not a power "
                   f"of two: float rounding of its sums can break popcount ties against the "
                   f"lowest-index rule, so the class cannot be reproduced exactly; give it a "
                   f"power-of-two scale (e.g. Brevitas' scaling_const = 1.0)\n")
    assert not (tmp_path / "x.bnn").exists()


def test_negative_batchnorm_scales_flip_the_weights(tmp_path, capsys):
    path = tiny_graph(tmp_path / "tiny.onnx")
    out = tmp_path / "tiny.bnn"
    code, stdout, err = run_cli(capsys, "import", path, "-o", out, "--input-offset", "0.5")
    assert (code, err) == (0, "")
    assert "359 / 359 test images of digits have equal classes" in stdout
    graph = onnx.load(str(path)).graph
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    signs = (inits["w0"].T >= 0).astype(np.uint8)
    flipped = np.all(artifact.load(out).layers[0].weights != signs, axis=1)
    assert np.array_equal(flipped, inits["g"] < 0)


def _one_line_error(capsys, argv, out):
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 2
    assert stdout == "" and err.startswith("error: ") and err.count("\n") == 1
    assert not out.exists()
    return err


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"weight_bits": 4}, "error: node w0_quant (Quant): 4-bit weights "
                         "without narrow range; bnnflow imports binary and ternary weights "
                         "(BipolarQuant, 1-bit signed Quant, or 2-bit narrow-range Quant: -1, "
                         "0, +1)\n"),
    ({"extra_op": "Softplus"}, "error: node extra (Softplus): op "
                               "Softplus is not supported; bnnflow import builds Reshape, "
                               "Flatten, Identity, BatchNormalization, Mul, Add, Sub, Div, Relu, "
                               "BipolarQuant, Quant, MultiThreshold, MatMul, Gemm, Conv, "
                               "MaxPool, Im2Col, MaxPoolNHWC\n"),
    ({"two_inputs": True}, "error: {path}: the graph has 2 inputs (x, x2); bnnflow imports "
                           "graphs with one input and one output\n"),
    ({"input_shape": (1, "K")}, "error: {path}: the graph's input x has shape (1, K): "
                                "dimension 2 is not a fixed size; export the graph with the "
                                "image's shape (Brevitas: export_qonnx(model, input_shape=(1, "
                                "C, H, W)))\n"),
    ({"input_shape": (1, 0)}, "error: {path}: the graph's input x has shape (1, 0): dimension 2 "
                              "is 0; export the graph"),
    ({"input_shape": (64,)}, "error: {path}: the graph's input x has shape (64); bnnflow reads "
                             "a batch dimension then the image's, such as (1, C, H, W) or (1, "
                             "K)\n"),
    ({"input_type": onnx.TensorProto.INT64}, "error: {path}: the graph's input x is int64; "
                                             "bnnflow feeds float32, as Brevitas and FINN "
                                             "export: declare it FLOAT (an n-bit input takes a "
                                             "UINTn quantization annotation)\n"),
    ({"out_bn": True}, "error: node bn1 (BatchNormalization): the scores after the last "
                       "layer are scaled or shifted per class, so their argmax can differ from "
                       "the popcount argmax; use one shared map (e.g. Brevitas' TensorNorm) or "
                       "none\n"),
])
def test_graphs_that_cannot_be_built_get_one_line(tmp_path, capsys, kwargs, message):
    path = tiny_graph(tmp_path / "bad.onnx", **kwargs)
    out = tmp_path / "bad.bnn"
    for dataset in ("digits", "none"):      # the shape is checked before any data is read
        err = _one_line_error(capsys, ["import", path, "-o", out, "--dataset", dataset], out)
        assert err.startswith(message.replace("{path}", str(path)))


@pytest.mark.parametrize("batch", ["N", 1, 4])
def test_a_symbolic_or_fixed_batch_imports_and_checks_images_of_the_graph_shape(
        tmp_path, capsys, batch):
    path = tiny_graph(tmp_path / "tiny.onnx", input_shape=(batch, 64))
    out = tmp_path / "tiny.bnn"
    code, stdout, err = run_cli(capsys, "import", path, "-o", out, "--dataset", "none",
                                "--random-images", "16")
    assert (code, err) == (0, "")
    assert "16 / 16 random images have equal classes" in stdout
    assert artifact.load(out).input.width == 64


def test_a_graph_the_executor_cannot_run_gets_one_line(tmp_path, capsys):
    proto = onnx.load(str(tiny_graph(tmp_path / "tiny.onnx")))
    w1 = next(t for t in proto.graph.initializer if t.name == "w1")
    w1.data_type = onnx.TensorProto.DOUBLE     # MatMul of float and double: onnxruntime refuses
    w1.ClearField("float_data")
    w1.double_data.extend([1.0] * 160)
    path = tmp_path / "mixed.onnx"
    onnx.save(proto, str(path))
    out = tmp_path / "mixed.bnn"
    err = _one_line_error(capsys, ["import", path, "-o", out], out)
    assert err.startswith("error: ") and "check it with onnx.checker.check_model" in err


def test_non_onnx_file_gets_one_line(tmp_path, capsys):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"this is not a protobuf \xff\xfe")
    out = tmp_path / "x.bnn"
    err = _one_line_error(capsys, ["import", path, "-o", out], out)
    assert err.startswith(f"error: {path}: not an ONNX model (")


def test_missing_external_data_gets_one_line(tmp_path, capsys):
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(tiny_graph(tmp_path / "tiny.onnx")))
    for t in proto.graph.initializer:      # raw data, which is what goes to the separate file
        t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t), t.name))
    kept = tmp_path / "kept"
    kept.mkdir()
    onnx.save(proto, str(kept / "ext.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="ext.onnx.data", size_threshold=0)
    assert (kept / "ext.onnx.data").is_file()
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "ext.onnx").write_bytes((kept / "ext.onnx").read_bytes())   # without its .data
    out = tmp_path / "x.bnn"
    err = _one_line_error(capsys, ["import", alone / "ext.onnx", "-o", out], out)
    assert err.startswith(f"error: {alone / 'ext.onnx'}: cannot read the tensors it keeps in a "
                          f"separate file (")
    assert err.endswith("); keep that file beside it, as the export wrote it\n")


def test_missing_input_file_gets_one_line(tmp_path, capsys):
    out = tmp_path / "x.bnn"
    err = _one_line_error(capsys, ["import", tmp_path / "none.onnx", "-o", out], out)
    assert err == (f"error: {tmp_path / 'none.onnx'}: no such file (export one with "
                   f"brevitas.export.export_qonnx)\n")


def test_unwritable_output_gets_one_line_before_reading(tmp_path, capsys):
    path = tiny_graph(tmp_path / "tiny.onnx")
    out = tmp_path / "blocker" / "x.bnn"
    (tmp_path / "blocker").write_text("a file, not a folder")
    err = _one_line_error(capsys, ["import", path, "-o", out], out)
    assert err == (f"error: cannot write {out}: {tmp_path / 'blocker'} is a file, not a "
                   f"folder; choose a path in a folder with -o\n")
