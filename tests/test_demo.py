"""The main job end to end: train, geometry, bitstream (--fold fit), Verilog, verification."""

import json

import pytest

from bnnflow.cli import main


@pytest.mark.slow
def test_demo_runs_every_stage_and_agrees_with_the_golden_model(tmp_path, capsys):
    out = tmp_path / "demo"
    # --clock board: one build; the default's PLL rebuild after it (45 s more here) is
    # tests/boards/test_build.py's auto-clock case.
    status = main(["demo", "--out", str(out), "--epochs", "3", "--images", "40",
                   "--clock", "board"])
    assert status == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    figures, stages = summary["summary"], summary["stages"]
    assert [s["stage"] for s in stages] == ["train + export", "geometry", "build", "verilog",
                                            "verify (verilator-direct)"]
    assert all(s["agrees"] in (True, None) for s in stages)
    assert figures["test_accuracy"] == figures["golden_accuracy"]
    assert figures["verified_images"] == 40 and figures["mismatches"] == 0
    assert figures["ii_measured"] == figures["ii"]
    assert figures["latency_measured"] == figures["latency"]
    assert figures["lut4"] > 0 and figures["fmax_mhz"] >= figures["clock_mhz"] == 12
    assert figures["clock_source"] == "board oscillator"
    built = json.loads((out / "build" / "build.json").read_text())
    assert figures["bitstream"] == built["bitstream"] == str(out / "build" / "top.bin")
    assert built["folding"] == figures["folding"] and built["ii"] == figures["ii"]
    assert built["attempts"][-1] == {"folding": figures["folding"], "ii": figures["ii"],
                                     "placed": True}
    assert figures["images_per_second"] == round(figures["clock_mhz"] * 1e6 / figures["ii"])
    assert figures["link_images_per_second"] == built["link_images_per_second"] > 0
    for path in ("train/model.bnn", "train/geometry/angles.png", "hw/bnnflow_top.v",
                 "hw/bnnflow_top.json", "verify.json", "build/top.bin"):
        assert (out / path).is_file(), path


@pytest.mark.parametrize(("argv", "message"), [
    (["--images", "0"], "--images must be a positive integer or 'all', not '0'"),
    (["--images", "some"], "--images must be a positive integer or 'all', not 'some'"),
    (["--stall", "2"], "--stall must be a probability in [0, 1), not 2"),
    (["--epochs", "0"], "--epochs must be a positive integer, not 0"),
    (["--pipeline", "-1"], "--pipeline must be a non-negative integer, not -1"),
    (["--clock", "fast"], "--clock must be auto, board or a frequency in MHz, not 'fast'"),
])
def test_bad_options_are_refused_before_training(tmp_path, capsys, argv, message):
    out = tmp_path / "new" / "demo"
    assert main(["demo", "--out", str(out), *argv]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not (tmp_path / "new").exists()
