"""bench/run_all.py --quick end to end: every section of results.json filled from a real run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "run_all.py"


@pytest.mark.slow
def test_quick_run_writes_every_figure_for_tfc_digits(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--epochs", "5", "--out-dir",
                           str(out), "--work-dir", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["quick"] is True
    assert results["complete"] is True
    assert list(results["cases"]) == ["tfc-digits"]
    assert results["settings"]["epochs"] == 5

    case = results["cases"]["tfc-digits"]
    acc = case["accuracy"]
    assert set(acc) >= {"float_baseline", "binary_pytorch", "golden", "hardware", "equal",
                        "hardware_images", "hardware_mismatches"}
    assert acc["hardware_images"] == case["n_test"]
    assert acc["hardware_mismatches"] == 0
    assert acc["equal"] is True
    assert acc["hardware"] == acc["golden"] == acc["binary_pytorch"]
    assert case["verification"]["model_checksum"].startswith("sha256:")
    assert 0.0 < acc["float_baseline"] <= 1.0

    (row,) = case["synthesis"]
    assert row["target"] == "ice40-up5k" and row["fits"] is True
    for key in ("lut4", "ff", "bram", "fmax_mhz", "ii", "latency", "images_per_second",
                "lut4_per_synapse_per_cycle", "synapses_per_cycle_per_lut4"):
        assert row[key] is not None, key
    assert row["ii_measured"] == row["ii"]
    assert row["latency_measured"] == row["latency"]
    assert row["images_per_second"] == pytest.approx(row["fmax_mhz"] * 1e6 / row["ii"], rel=1e-3)
    assert row["lut4_per_synapse_per_cycle"] == pytest.approx(
        row["lut4"] * row["ii"] / case["synapses"], abs=1e-3)

    times = case["tool_seconds"]
    for key in ("train_binary", "verilog_generation", "verilator_build"):
        assert times[key] >= 0.0, key
    assert set(row["step_seconds"]) >= {"yosys", "nextpnr"}

    speed = results["simulator_speed"]
    assert {"amaranth", "icarus", "verilator-direct"} == set(speed["simulators"])
    for sim, rep in speed["simulators"].items():
        assert rep["passed"] is True, sim
        assert rep["cycles_per_second"] > 0, sim
        runs = rep["cycles_per_second_runs"]
        assert len(runs) == (2 if sim in ("verilator", "verilator-direct") else 1), sim
        assert runs == sorted(runs) and rep["cycles_per_second"] == runs[(len(runs) - 1) // 2]
    assert speed["ratios_to_cocotb_verilator"] == {}     # --quick runs no cocotb + Verilator

    statuses = {c["goal"]: c["status"] for c in results["goal_checks"]}
    assert statuses["measured II == analytic II for every configuration"] == "met"
    markdown = (out / "results.md").read_text()
    assert "| tfc-digits |" in markdown and "## Issue 7 targets" in markdown


def _run_all_module():
    import runpy

    return runpy.run_path(str(SCRIPT), run_name="bnnflow_run_all")


def test_goal_checks_report_each_layer64_pipeline_and_same_ii_fmax():
    mod = _run_all_module()
    up5k = {"target": "ice40-up5k", "choice": "fit_folding", "fits": True, "ii": 256,
            "fmax_mhz": 47.5, "folding": "1x48", "ii_measured": 256}
    ecp5 = [{"target": "ecp5-85k", "choice": "fit_folding", "fits": None, "error": "tool",
             "folding": "64x192"},
            {"target": "ecp5-85k", "choice": "auto II 256", "fits": True, "ii": 256,
             "fmax_mhz": 130.0, "folding": "1x48", "ii_measured": 256}]
    results = {
        "settings": {"pipeline": 2},
        "simulator_speed": None,
        "cases": {"tfc-digits": {"synthesis": [up5k, *ecp5]}},
        "layer64": [{"arch": "ice40", "pipeline": 0, "lut4_per_synapse": 0.84},
                    {"arch": "ice40", "pipeline": 2, "lut4_per_synapse": 0.92},
                    {"arch": "ecp5", "pipeline": 2, "lut4_per_synapse": 0.8,
                     "lut4_with_carry_per_synapse": 1.38}],
    }
    checks = {c["goal"]: c for c in mod["goal_checks"](results)}
    ice0 = checks["fully parallel 64x64 layer <= 0.85 LUT4/synapse on ice40 (LUT4 cells only, "
                  "pipeline 0)"]
    ice2 = checks["fully parallel 64x64 layer <= 0.85 LUT4/synapse on ice40 (LUT4 cells only, "
                  "pipeline 2)"]
    assert (ice0["status"], ice2["status"]) == ("met", "MISSED")
    ecp5_fmax = checks["tfc Fmax >= 125 MHz on ecp5-85k (pipeline 2)"]
    assert ecp5_fmax["measured"] == 130.0 and ecp5_fmax["status"] == "met"
    assert "II 256" in ecp5_fmax["where"]
    assert checks[">= 1,000,000 cycles/s with verilator-direct on sfc"]["status"] == \
        "not measured"


def test_speed_ratios_are_to_cocotb_verilator_and_empty_without_it():
    ratios = _run_all_module()["_ratios"]
    reports = {"verilator": {"cycles_per_second": 2000.0},
               "verilator-direct": {"cycles_per_second": 50000.0},
               "icarus": {"cycles_per_second": None}}
    assert ratios(reports) == {"verilator": 1.0, "verilator-direct": 25.0}
    del reports["verilator"]
    assert ratios(reports) == {}


@pytest.mark.parametrize("message, summary", [
    ("nextpnr failed (exit status 125); last lines of its log:\nInfo: Running router2...\n"
     "ERROR: Failed to route arc 0.0 of net 'clk'.\n0 warnings, 1 error\n",
     "nextpnr failed (exit status 125); last lines of its log: "
     "ERROR: Failed to route arc 0.0 of net 'clk'."),
    ("nextpnr was stopped after its time limit of 900 s; last lines of its log:\n"
     "Info: iter=7 overused=8269\nInfo: iter=8 overused=6934\n",
     "nextpnr was stopped after its time limit of 900 s; last lines of its log: "
     "Info: iter=8 overused=6934"),
    ("yosys is missing", "yosys is missing"),
])
def test_failure_summary_keeps_the_tools_error_line(message, summary):
    assert _run_all_module()["failure_summary"](RuntimeError(message)) == summary


def test_sfc_speed_design_is_auto_at_ii_64():
    from bnnflow.hw.folding import auto_fold
    from bnnflow.model.random_net import random_model

    run_all = _run_all_module()
    fold, ii = auto_fold(random_model([784, 256, 256, 256, 10], seed=0), 64)
    assert ii == 64
    assert run_all["SPEED_FOLDING"]["sfc-mnist5k"] == ",".join(str(f) for f in fold)
