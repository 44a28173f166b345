"""``bnnflow import`` of a Brevitas W1A1 CNN (``QuantConv2d``, ``MaxPool2d``, NCHW): a .bnn model
of conv, pool and dense layers whose golden classes equal Brevitas' own eval and the qonnx
executor's, that the conv hardware reproduces; padded, strided and average-pooled graphs get
one line and exit status 2."""

import numpy as np
import pytest

from bnnflow.model import artifact, golden
from bnnflow.model.qonnx_import_conv import hwc_columns, window_rows

from .qonnx_fixtures import (
    BREVITAS_WARNINGS,
    brevitas_classes,
    brevitas_cnn,
    export_brevitas,
    run_cli,
    train_brevitas,
)

pytestmark = BREVITAS_WARNINGS


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory, digits):
    """A trained and exported Brevitas CNN: ``(onnx path, Brevitas' test classes)``."""
    folder = tmp_path_factory.mktemp("brevitas_cnn")
    net = train_brevitas(brevitas_cnn(), digits.x_train / 16, digits.y_train, epochs=3,
                         batch=128)
    return export_brevitas(net, folder / "cnn.onnx"), brevitas_classes(net, digits.x_test / 16)


def test_window_rows_and_hwc_columns_follow_the_conventions():
    raw = np.arange(2 * 3 * 2 * 2).reshape(2, 3, 2, 2)          # (Cout, Cin, kh, kw)
    rows = window_rows(raw)
    # row 0, window position (a, b, ch) = (1, 0, 2) sits at (a * kw + b) * Cin + ch = 8
    assert rows.shape == (2, 12) and rows[0, 8] == raw[0, 2, 1, 0]
    chw = np.arange(3 * 2 * 4).reshape(1, -1)                   # C=3, H=2, W=4 flattened
    hwc = hwc_columns(chw, (2, 4, 3))
    # channels-last position (h, w, c) = (1, 2, 0) is (h * W + w) * C + c = 18
    assert hwc[0, 18] == chw[0, 0 * 8 + 1 * 4 + 2]


def test_brevitas_cnn_imports_with_brevitas_classes(cnn_run, digits, tmp_path, capsys):
    path, expected = cnn_run
    out = tmp_path / "cnn.bnn"
    code, stdout, err = run_cli(capsys, "import", path, "-o", out)
    assert (code, err) == (0, "")
    model = artifact.load(out)
    assert [layer.kind for layer in model.layers] == ["binary_conv2d", "maxpool2d",
                                                      "binary_conv2d", "binary_dense"]
    assert model.layers[0].in_shape == (8, 8, 1) and model.layers[2].out_shape == (2, 2, 6)
    assert np.array_equal(golden.run_images(model, digits.x_test).classes, expected)
    n = len(digits.x_test)
    assert f"{n} / {n} test images of digits have equal classes" in stdout


def test_imported_brevitas_cnn_matches_amaranth_hardware(cnn_run, tmp_path, capsys):
    out = tmp_path / "cnn.bnn"
    assert run_cli(capsys, "import", cnn_run[0], "-o", out)[0] == 0
    code, stdout, _ = run_cli(capsys, "verify", out, "--sim", "amaranth", "--images", "4",
                           "--fold", "auto", "--ii", "256")
    assert code == 0, stdout


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"padding": 1}, "(Conv): pads [1, 1, 1, 1]; bnnflow builds convolutions with pads "
                     "[0, 0, 0, 0] (stride 1, no padding)\n"),
    ({"stride": 2}, "(Conv): strides [2, 2]; bnnflow builds convolutions with strides [1, 1] "
                    "(stride 1, no padding)\n"),
    ({"pool": "avg"}, "(AveragePool): is not imported; bnnflow import builds Conv (NCHW, "
                      "stride 1, unpadded) and MaxPool layers besides MatMul/Gemm\n"),
])
def test_cnn_graphs_that_cannot_be_built_get_one_line(tmp_path, capsys, kwargs, message):
    path = export_brevitas(brevitas_cnn(**kwargs).eval(), tmp_path / "bad.onnx")
    capsys.readouterr()                                   # the exporter's own progress lines
    out = tmp_path / "bad.bnn"
    code, stdout, err = run_cli(capsys, "import", path, "-o", out)
    assert (code, stdout) == (2, "")
    assert err.startswith("error: node ") and err.endswith(message)
    assert not out.exists()
