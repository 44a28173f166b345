"""``bnnflow run-board --port sim``: test images through the simulated UART top."""

import dataclasses
import re

import numpy as np
import pytest

from bnnflow.boards import cli_run_board
from bnnflow.cli import main
from bnnflow.model import artifact, data, golden
from bnnflow.model.random_net import random_model


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """A random 64-12-10 network that records the digits test split in its provenance."""
    model = dataclasses.replace(
        random_model([64, 12, 10], seed=3),
        provenance={"dataset": "digits", "split_seed": 0, "test_fraction": 0.2,
                    "data_dir": None})
    path = tmp_path_factory.mktemp("model") / "digits.bnn"
    artifact.save(model, path)
    return path, model


def test_run_board_sim_checks_test_images_against_golden_model(digits_model, capsys):
    path, model = digits_model
    assert main(["run-board", str(path), "--port", "sim", "--images", "12"]) == 0
    out = capsys.readouterr().out
    images, labels = data.test_split_for(model)
    classes = golden.run_images(model, images[:12]).classes
    accuracy = np.mean(classes == labels[:12])
    assert "sending 12 test images of digits over sim" in out
    assert "golden model agreement: 12/12 images (class and popcounts checked)" in out
    assert f"accuracy: {accuracy:.4f} ({int(np.sum(classes == labels[:12]))}/12)" in out
    rate = re.search(r"throughput: ([0-9.,]+) images/s over sim \(wall clock of the "
                     r"simulation, [0-9]+ cycles simulated\)", out)
    assert rate and float(rate[1].replace(",", "")) > 0       # never printed as 0.0


@pytest.mark.parametrize("argv", [["--fold", "3x16,5x4", "--class-only"],
                                  ["--fold", "auto", "--ii", "8", "--pipeline", "1"]])
def test_run_board_sim_with_folded_designs(digits_model, capsys, argv):
    path, _ = digits_model
    assert main(["run-board", str(path), "--port", "sim", "--images", "4", *argv]) == 0
    assert "golden model agreement: 4/4 images" in capsys.readouterr().out


def test_model_without_test_split_gets_seeded_random_bits(tmp_path, capsys):
    path = tmp_path / "r.bnn"
    model = random_model([13, 5, 3], seed=4)
    artifact.save(model, path)
    assert main(["run-board", str(path), "--port", "sim", "--images", "3", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "sending 3 random input vectors (seed 7; the model has no recorded test split)" in out
    assert "golden model agreement: 3/3 images" in out
    assert "accuracy" not in out
    bits, labels, _ = cli_run_board.load_images(model, 3, seed=7)
    assert labels is None and bits.shape == (3, 13)
    assert np.array_equal(bits, cli_run_board.load_images(model, 3, seed=7)[0])
    assert not np.array_equal(bits, cli_run_board.load_images(model, 3, seed=8)[0])


@pytest.mark.parametrize(("argv", "message"), [
    (["--port", "sim", "--images", "-1"],
     "error: --images must be 0 (all) or a positive count, not -1"),
    (["--port", "/dev/ttyUSB9", "--fold", "auto", "--ii", "4"],
     "error: --fold, --ii and --pipeline only apply to --port sim"),
    (["--port", "/nonexistent/tty"], "error: cannot open serial port '/nonexistent/tty': "),
    (["--port", "sim", "--divisor", "1"], "error: divisor must be an integer >= 2, not 1"),
    (["--port", "/dev/ttyUSB9", "--baud", "0"],
     "error: --baud must be a positive UART rate, such as 115200, not 0\n"),
    (["--port", "sim", "--fold", "99x1,1x1"], "error: layer 0 (fc0, 64 inputs, 12 neurons): pe "
                                              "must be an integer in 1..12, not 99"),
    (["--port", "sim", "--fold", "fit"], "error: --fold fit places designs on a device, which "
                                         "--port sim does not; give the folding 'bnnflow "
                                         "build' printed (--fold PExSIMD,...)\n"),
])
def test_run_board_bad_input_exits_2(digits_model, capsys, argv, message):
    path, _ = digits_model
    assert main(["run-board", str(path), "--images", "2", *argv]) == 2
    assert capsys.readouterr().err.startswith(message)


def test_a_design_too_wide_for_amaranth_is_one_line_naming_the_fix(tmp_path, capsys):
    path = tmp_path / "wide.bnn"
    artifact.save(random_model([520, 256, 3], seed=0), path)
    status = main(["run-board", str(path), "--port", "sim", "--images", "2",
                   "--fold", "128x520,3x256"])
    err = capsys.readouterr().err
    assert status == 2
    assert err == ("error: Amaranth's simulator takes values of at most 65536 bits and this "
                   "design has one of 66560 bits (a layer's weight word is PE x SIMD bits, twice "
                   "that for ternary weights); fold it with fewer PE x SIMD per layer (--fold, "
                   "or --fold auto --ii CYCLES)\n")
