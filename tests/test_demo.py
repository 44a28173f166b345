"""The main job end to end: train, geometry, Verilog, verification, synthesis."""

import json

import pytest

from bnnflow.cli import main


@pytest.mark.slow
def test_demo_runs_every_stage_and_agrees_with_the_golden_model(tmp_path, capsys):
    out = tmp_path / "demo"
    status = main(["demo", "--out", str(out), "--epochs", "3", "--images", "40"])
    assert status == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    figures, stages = summary["summary"], summary["stages"]
    assert [s["stage"] for s in stages] == ["train + export", "geometry", "verilog",
                                            "verify (verilator-direct)", "synth"]
    assert all(s["agrees"] in (True, None) for s in stages)
    assert figures["test_accuracy"] == figures["golden_accuracy"]
    assert figures["verified_images"] == 40 and figures["mismatches"] == 0
    assert figures["ii_measured"] == figures["ii"]
    assert figures["latency_measured"] == figures["latency"]
    assert figures["lut4"] > 0 and figures["fmax_mhz"] > 0
    for path in ("train/model.bnn", "train/geometry/angles.png", "hw/bnnflow_top.v",
                 "hw/bnnflow_top.json", "verify.json", "synth/report.json"):
        assert (out / path).is_file(), path
