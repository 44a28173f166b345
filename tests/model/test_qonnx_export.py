"""``bnnflow export-qonnx``: the QONNX graph of a .bnn model (dense, conv and max-pool layers),
executed by qonnx, gives the golden model's popcounts and classes; bad paths get one line and
exit status 2."""

import numpy as np
import pytest

from bnnflow.cli import main
from bnnflow.model import artifact, golden
from bnnflow.model.artifact import BnnModel, InputSpec
from bnnflow.model.data import load_dataset
from bnnflow.model.qonnx_export import export_graph, run_exported
from bnnflow.model.qonnx_graph import graph_from_bytes, load_graph
from bnnflow.model.random_net import random_conv_model, random_model

DIGITS = {"kind": "threshold", "scale": 16.0, "threshold": 0.5}
PIXELS = {"kind": "pixels", "scale": 16.0, "bits": 8}


def _digits_model(widths, seed=0, **kwargs):
    """A random model over the 8x8 digits (one threshold, or 8-bit pixels with
    ``input_bits=8``), naming the digits as its data set."""
    m = random_model(widths, seed=seed, **kwargs)
    encoding = PIXELS if kwargs.get("input_bits", 1) > 1 else DIGITS
    return BnnModel(layers=m.layers, input=InputSpec(width=64, shape=(8, 8), encoding=encoding),
                    classes=m.classes, provenance={"dataset": "digits", "split_seed": 0})


def _run(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("kwargs", [{}, {"ternary": True}, {"act_bits": 2}, {"input_bits": 8},
                                    {"input_bits": 8, "ternary": True, "act_bits": 2}],
                         ids=["binary", "ternary", "2-bit", "8-bit input", "all three"])
def test_executed_graph_gives_the_golden_popcounts(kwargs):
    model = _digits_model([64, 24, 17, 10], seed=5, **kwargs)
    images = np.random.default_rng(1).integers(0, 17, size=(200, 8, 8)).astype(float)
    for argmax in (False, True):
        popcounts, classes = run_exported(export_graph(model, argmax=argmax), model, images)
        result = golden.run_images(model, images)
        assert np.array_equal(popcounts, result.popcounts)
        assert np.array_equal(classes, result.classes)


CONV_NETS = [
    ((7, 6, 2), [("conv", 5, 3), ("pool", 2), ("conv", 3, 2), ("dense", 7)], 4),
    ((9, 8, 1), [("conv", 4, 2, 3), ("conv", 3, 3), ("pool", 2, 1), ("dense", 5)], 3),
    ((5, 5, 3), [("conv", 2, 3), ("pool", 3)], 5),        # the map goes straight to the output
]


@pytest.mark.parametrize("net", range(len(CONV_NETS)))
@pytest.mark.parametrize("kwargs", [{}, {"ternary": True}, {"act_bits": 2}, {"input_bits": 8},
                                    {"input_bits": 8, "ternary": True, "act_bits": 2}],
                         ids=["binary", "ternary", "2-bit", "8-bit input", "all three"])
def test_conv_graph_gives_the_golden_popcounts(kwargs, net):
    in_shape, stages, classes = CONV_NETS[net]
    model = random_conv_model(in_shape, stages, classes, seed=net + 3, **kwargs)
    images = np.random.default_rng(net).uniform(0, model.input.encoding["scale"],
                                                size=(40, *model.input.shape))
    graph = export_graph(model, argmax=True)
    assert {"Im2Col", "MaxPoolNHWC", "MultiThreshold"} <= {n.op_type for n in graph.graph.node}
    popcounts, classes = run_exported(graph, model, images)
    result = golden.run_images(model, images)
    assert np.array_equal(popcounts, result.popcounts)
    assert np.array_equal(classes, result.classes)


def test_cli_checks_the_test_split_and_writes_an_executable_graph(tmp_path, capsys):
    src, out = tmp_path / "m.bnn", tmp_path / "m.onnx"
    artifact.save(_digits_model([64, 16, 10], seed=2), src)
    code, stdout, err = _run(capsys, "export-qonnx", src, "-o", out, "--argmax")
    assert (code, err) == (0, "")
    assert ("agreement (qonnx executor vs golden model): 359 / 359 test images of digits have "
            "equal classes, 359 / 359 equal popcounts") in stdout
    graph = load_graph(out)
    assert {n.op_type for n in graph.graph.node} == {"BipolarQuant", "MatMul", "MultiThreshold",
                                                     "Add", "Mul", "ArgMax"}


def test_8_bit_pixels_enter_as_uint8_levels(tmp_path, capsys):
    src, out = tmp_path / "m.bnn", tmp_path / "m.onnx"
    artifact.save(_digits_model([64, 16, 10], seed=3, input_bits=8), src)
    code, stdout, err = _run(capsys, "export-qonnx", src, "-o", out)
    assert (code, err) == (0, "")
    assert "359 / 359 test images of digits have equal classes, 359 / 359 equal" in stdout
    graph = load_graph(out)
    assert graph.get_tensor_datatype("global_in").name == "UINT8"
    assert [n.op_type for n in graph.graph.node][:3] == ["Mul", "Add", "MatMul"]


def test_export_then_import_gives_the_same_layers(tmp_path, capsys):
    model = _digits_model([64, 20, 12, 10], seed=7)
    src, onnx_path, back = tmp_path / "m.bnn", tmp_path / "m.onnx", tmp_path / "back.bnn"
    artifact.save(model, src)
    assert _run(capsys, "export-qonnx", src, "-o", onnx_path)[0] == 0
    code, _, err = _run(capsys, "import", onnx_path, "-o", back)
    assert (code, err) == (0, "")
    again = artifact.load(back)
    assert again.input.encoding == DIGITS
    for a, b in zip(model.layers, again.layers, strict=True):
        assert np.array_equal(a.weights, b.weights)
        assert (a.thresholds is None) == (b.thresholds is None)
        assert a.thresholds is None or np.array_equal(a.thresholds, b.thresholds)


def test_model_without_a_data_set_is_checked_on_random_images(tmp_path, capsys):
    src, out = tmp_path / "r.bnn", tmp_path / "r.onnx"
    artifact.save(random_model([30, 8, 4], seed=1), src)
    code, stdout, _ = _run(capsys, "export-qonnx", src, "-o", out, "--random-images", "64")
    assert code == 0
    assert "64 / 64 random images (the model names no data set)" in stdout


@pytest.mark.parametrize("case", ["missing", "unwritable", "unknown data set", "no images"])
def test_refusals_get_one_line_and_write_nothing(tmp_path, capsys, case):
    src, out = tmp_path / "m.bnn", tmp_path / "m.onnx"
    extra = []
    if case == "no images":
        artifact.save(random_model([30, 8, 4], seed=1), src)
        extra = ["--random-images", "0"]
        expected = "error: --random-images must be a positive number, not 0\n"
    elif case == "missing":
        expected = f"error: {src}: no such file (train one with 'bnnflow train')\n"
    elif case == "unknown data set":    # not silently checked on random images instead
        model = _digits_model([64, 8, 10])
        artifact.save(BnnModel(layers=model.layers, input=model.input, classes=model.classes,
                               provenance={"dataset": "nosuch"}), src)
        expected = ("error: the model's provenance names no known data set ('nosuch'); only "
                    "models trained by 'bnnflow train' on ")
    else:
        artifact.save(_digits_model([64, 8, 10]), src)
        (tmp_path / "blocker").write_text("a file")
        out = tmp_path / "blocker" / "m.onnx"
        expected = (f"error: cannot write {out}: {tmp_path / 'blocker'} is a file, not a "
                    f"folder; choose a path in a folder with -o\n")
    code, stdout, err = _run(capsys, "export-qonnx", src, "-o", out, *extra)
    assert (code, stdout) == (2, "") and err.startswith(expected) and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.slow
def test_trained_tfc_exports_with_the_golden_classes(tmp_path, capsys):
    run = tmp_path / "tfc"
    assert _run(capsys, "train", "--preset", "tfc", "--dataset", "digits", "--epochs", "20",
                "--out", run)[0] == 0
    out = tmp_path / "tfc.onnx"
    code, stdout, _ = _run(capsys, "export-qonnx", run / "model.bnn", "-o", out)
    assert code == 0
    model = artifact.load(run / "model.bnn")
    ds = load_dataset("digits")
    _, classes = run_exported(graph_from_bytes(out.read_bytes()), model, ds.x_test)
    assert np.array_equal(classes, golden.run_images(model, ds.x_test).classes)
    assert "359 / 359 test images of digits have equal classes" in stdout
