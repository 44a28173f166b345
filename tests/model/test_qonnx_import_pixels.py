"""``bnnflow import`` of n-bit pixel inputs (a signed ``Quant`` without narrow range on the
input, as Brevitas CNV's 8-bit Q1.7 one) and of colour images: Brevitas' own CNV in its
``cnv_1w1a``, ``cnv_1w2a`` and ``cnv_2w2a`` configurations (32x32x3) imports with Brevitas'
classes on CIFAR-10 batches, an 8x8 CNN with that input matches the conv hardware, and an
n-bit input straight into the last layer gets one line."""

import numpy as np
import pytest
import torch
from torch import nn

from bnnflow.model import artifact, golden
from bnnflow.model.data import load_dataset
from bnnflow.model.encoding import encode
from tests.model.cifar_files import write_cifar_batches

from .qonnx_fixtures import (
    BREVITAS_WARNINGS,
    brevitas_classes,
    brevitas_cnn,
    brevitas_cnv,
    cnv_input_quant,
    export_brevitas,
    import_refused,
    import_untrained_cnn,
    run_cli,
    train_brevitas,
)

pytestmark = BREVITAS_WARNINGS

#: Brevitas CNV's input levels on pixels 0..255, worked out by hand: ``q = round(128 * (2p /
#: 255 - 1))`` is ``p - 128`` below 128 and ``p - 127`` from 128 on (no pixel gives 0), 127 at
#: 255 after the clip; the level is ``q + 128``.
CNV_LEVELS = np.array([p if p < 128 else min(p + 1, 255) for p in range(256)])

#: The layer kinds of CNV: six convs (two pools), two hidden dense layers, the output layer.
CNV_KINDS = {1: ["binary_conv2d"] * 2 + ["maxpool2d"] + ["binary_conv2d"] * 2 + ["maxpool2d"]
             + ["binary_conv2d"] * 2 + ["binary_dense"] * 3,
             2: ["ternary_conv2d"] * 2 + ["maxpool2d"] + ["ternary_conv2d"] * 2 + ["maxpool2d"]
             + ["ternary_conv2d"] * 2 + ["ternary_dense"] * 2 + ["binary_dense"]}


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    """CIFAR-10 batches of random pixels (24 test images)."""
    folder = tmp_path_factory.mktemp("cifar")
    write_cifar_batches(folder, n_per_batch=2, n_test=24, seed=5)
    return folder


@pytest.mark.parametrize("weight_bits, act_bits", [
    (1, 1),
    pytest.param(1, 2, marks=pytest.mark.slow),
    pytest.param(2, 2, marks=pytest.mark.slow),
])
def test_brevitas_cnv_imports_with_brevitas_classes(weight_bits, act_bits, cifar_dir, tmp_path,
                                                     capsys):
    net = brevitas_cnv(weight_bits, act_bits)
    path = export_brevitas(net, tmp_path / "cnv.onnx", shape=(3, 32, 32))
    capsys.readouterr()
    out = tmp_path / "cnv.bnn"
    code, stdout, err = run_cli(capsys, "import", path, "-o", out, "--dataset", "cifar10",
                                "--data-dir", cifar_dir)
    assert (code, err) == (0, "")
    assert "input: one 8-bit level per pixel (pixel_levels)" in stdout
    assert "24 / 24 test images of cifar10 have equal classes" in stdout
    model = artifact.load(out)
    assert [layer.kind for layer in model.layers] == CNV_KINDS[weight_bits]
    assert model.layers[0].in_shape == (32, 32, 3) and model.layers[0].in_bits == 8
    # 2-bit activations: two thermometer channels per channel, 2 x 256 after the last conv
    assert model.layers[7].out_shape == (1, 1, 256 * act_bits)
    assert model.input.encoding["kind"] == "pixel_levels"
    assert np.array_equal(encode(model.input.encoding, np.arange(256).reshape(1, 256))[0],
                          CNV_LEVELS)
    ds = load_dataset("cifar10", data_dir=cifar_dir)
    expected = brevitas_classes(net, ds.x_test.transpose(0, 3, 1, 2) / 255)
    result = golden.run_images(model, ds.x_test)
    assert np.array_equal(result.classes, expected)
    assert len(set(expected.tolist())) > 2                 # not one class for every image


@pytest.fixture(scope="module")
def pixel_cnn(tmp_path_factory, digits):
    """An 8x8 Brevitas CNN with CNV's 8-bit input, trained 3 epochs on the digits and
    exported: ``(onnx path, Brevitas' test classes)``."""
    net = train_brevitas(brevitas_cnn(in_bits=8), digits.x_train / 16, digits.y_train,
                         epochs=3, batch=128)
    folder = tmp_path_factory.mktemp("pixel_cnn")
    return export_brevitas(net, folder / "cnn.onnx"), brevitas_classes(net, digits.x_test / 16)


def test_cnn_with_8_bit_input_imports_and_matches_amaranth_hardware(pixel_cnn, digits,
                                                                     tmp_path, capsys):
    path, expected = pixel_cnn
    out = tmp_path / "cnn.bnn"
    code, stdout, err = run_cli(capsys, "import", path, "-o", out)
    assert (code, err) == (0, "")
    model = artifact.load(out)
    # digits: q = round(128 * (p / 8 - 1)) = 16p - 128, clipped to 127 at p = 16
    assert np.array_equal(encode(model.input.encoding, np.arange(17).reshape(1, 17))[0],
                          np.minimum(16 * np.arange(17), 255))
    result = golden.run_images(model, digits.x_test)
    assert np.array_equal(result.classes, expected)
    assert np.mean(result.classes == digits.y_test) > 0.3     # trained, not one class
    code, stdout, _ = run_cli(capsys, "verify", out, "--sim", "amaranth", "--images", "4",
                              "--fold", "auto", "--ii", "256")
    assert code == 0, stdout


def test_8_bit_input_into_the_last_layer_gets_one_line(tmp_path, capsys):
    import brevitas.nn as qnn
    from brevitas.quant import SignedBinaryWeightPerTensorConst

    class Linear(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.inq = cnv_input_quant()
            self.fc = qnn.QuantLinear(64, 10, bias=False,
                                      weight_quant=SignedBinaryWeightPerTensorConst)

        def forward(self, x):
            return self.fc(self.inq(2.0 * x.reshape(x.shape[0], -1) - 1.0))

    path = export_brevitas(Linear().eval(), tmp_path / "linear.onnx")
    capsys.readouterr()
    err = import_refused(capsys, path)
    assert err.startswith("error: node ") and err.endswith(
        "the last layer reads the n-bit input directly; its offset per class has no place "
        "in bnnflow's popcount output (add a hidden layer)\n")


@pytest.mark.parametrize("in_bits", [5, 8])
def test_n_bit_inputs_read_as_pixel_levels_untrained(in_bits, digits, tmp_path, capsys):
    """A narrow-range 5-bit input has 30 thermometer levels, more than a code holds (16): it
    becomes one 5-bit element per pixel, ``q = (v + 1) / 2`` (no level ``2**n - 1``); CNV's
    8-bit input is ``q = (v - 1) / 2``."""
    net = brevitas_cnn(in_bits=in_bits)
    model = import_untrained_cnn(net, tmp_path, capsys)
    assert model.input.encoding["kind"] == "pixel_levels"
    assert model.input.bits == in_bits and model.layers[0].in_bits == in_bits
    levels = encode(model.input.encoding, np.arange(17).reshape(1, 17))[0]
    if in_bits == 5:
        # q = round(15 * (p / 8 - 1)) in -15..15 (halves as the float32 graph rounds them):
        # the level q + 15 runs from 0 to 30, never 31, and halfway is 15
        assert (levels[0], levels[8], levels[16]) == (0, 15, 30)
        assert set(np.diff(levels.astype(int)).tolist()) == {1, 2}     # 15/8 levels a pixel
    assert np.array_equal(golden.run_images(model, digits.x_test).classes,
                          brevitas_classes(net, digits.x_test / 16))


def test_decision_within_the_float_rounding_gets_one_line_naming_the_fix(tmp_path, capsys):
    """Untrained BatchNorm (mean 0, variance 1) puts a decision exactly on a reachable dot; with
    8-bit inputs and the 0.1 weight scale the float sums could round either way there."""
    path = export_brevitas(brevitas_cnn(in_bits=8).eval(), tmp_path / "cnn.onnx")
    capsys.readouterr()
    err = import_refused(capsys, path)
    assert err.startswith("error: node ") and "neuron 0: its output changes within the float " \
        "rounding of the MatMul (scale 0.000390625 is not a power of two)" in err
    assert err.endswith("cannot import it exactly; give the weights a power-of-two scale "
                        "(Brevitas: scaling_const = 1.0, as bnn_pynq's CommonWeightQuant)\n")


def test_import_without_a_data_set_checks_random_images_of_the_graphs_shape(pixel_cnn,
                                                                              tmp_path, capsys):
    """--dataset none: a network trained on the user's own data. The check runs on random
    pixels of the graph's own input shape, and verify then stimulates it with random inputs."""
    out = tmp_path / "cnn.bnn"
    code, stdout, err = run_cli(capsys, "import", pixel_cnn[0], "-o", out, "--dataset", "none",
                                "--random-images", "64", "--input-scale", "16")
    assert (code, err) == (0, "")
    assert "64 / 64 random images have equal classes" in stdout
    assert "accuracy" not in stdout
    model = artifact.load(out)
    assert model.input.shape == (8, 8) and model.input.encoding["scale"] == 16.0
    assert model.provenance["dataset"] is None
    assert model.provenance["random_images"] == {"count": 64, "seed": 0, "pixels": "0..16"}
    code, stdout, _ = run_cli(capsys, "verify", out, "--sim", "amaranth", "--images", "3",
                              "--fold", "auto", "--ii", "256")
    assert code == 0, stdout
    code, stdout, err = run_cli(capsys, "import", pixel_cnn[0], "-o", out, "--dataset", "none",
                                "--random-images", "0")
    assert (code, err) == (2, "error: --random-images must be a positive number, not 0\n")
    for option, value, what in (("--input-scale", "inf", "a positive number"),
                                ("--input-scale", "nan", "a positive number"),
                                ("--input-offset", "-inf", "a finite number")):
        code, stdout, err = run_cli(capsys, "import", pixel_cnn[0], "-o", out, "--dataset",
                                    "none", f"{option}={value}")
        assert (code, err) == (2, f"error: {option} must be {what}, not {float(value)!r}\n")
