"""Board bitstreams: iCEBreaker (and ULX3S, slow), errors leave no output behind."""

import json
import re

import pytest

from bnnflow.boards import build as build_module
from bnnflow.boards.build import BOARDS, BoardTop, _explain_fit, build
from bnnflow.boards.fit import DoesNotFit, NotPlaced
from bnnflow.boards.platforms import get_board
from bnnflow.boards.pll import ecp5_pll, ice40_pll
from bnnflow.boards.targets import get_target
from bnnflow.boards.uart_top import UartTop
from bnnflow.cli import main
from bnnflow.errors import BnnflowError, ToolError
from bnnflow.hw.folding import fully_parallel
from bnnflow.model import artifact
from bnnflow.model.random_net import random_model


@pytest.fixture(scope="module")
def tiny():
    return random_model([16, 8, 4], seed=0)


def check_build(info, out, suffix, board, target):
    bitstream = out / f"top.{suffix}"
    assert info["bitstream"] == str(bitstream)
    assert bitstream.stat().st_size > 10_000
    assert info["board"] == board and info["target"] == target
    assert info["fmax_mhz"] >= info["clock_mhz"]
    assert info["clock"]["achieved_mhz"] == info["clock_mhz"]
    assert info["protocol"]["divisor"] == round(info["clock_mhz"] * 1e6 / 115200)
    assert info["protocol"]["request_bytes"] == 2
    assert info["protocol"]["reply_bytes"] == 5
    assert info["resources"]["lut4"] > 0
    # ECP5 weight ROMs get the output register (block RAM), iCE40 ones not (verify --board
    # simulates the same)
    assert info["rom_register"] is (get_target(target).family == "ecp5")
    assert json.loads((out / "build.json").read_text()) == info
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_icebreaker_build_on_the_board_clock_writes_a_bitstream(tiny, tmp_path):
    info = build(tiny, "icebreaker", tmp_path, [(4, 8), (4, 8)], clock="board")
    check_build(info, tmp_path, "bin", "icebreaker", "ice40-up5k")
    assert info["clock_mhz"] == 12 and info["protocol"]["divisor"] == 104
    assert info["pll"] is None and info["clock"]["source"] == "board"
    assert info["ii"] == 4           # layer 0: ceil(8/4) * ceil(16/8)


def check_pll_build(info, out, board_mhz):
    clock = info["clock"]
    assert clock["source"] == "pll" and clock["board_mhz"] == board_mhz
    assert info["pll"]["achieved_mhz"] == info["clock_mhz"] > board_mhz
    assert info["pll"]["achieved_mhz"] <= info["pll"]["requested_mhz"]
    # nextpnr derived the PLL clock's constraint (its own rounding of the VCO) and met it.
    tim = (out / "top.tim").read_text()
    checks = re.findall(r"Max frequency for clock '[^']*': ([\d.]+) MHz \((PASS|FAIL) at "
                        r"([\d.]+) MHz\)", tim)
    assert checks and all(result == "PASS" for _, result, _ in checks)
    assert float(checks[-1][2]) == pytest.approx(info["clock_mhz"], abs=0.05)
    assert clock["summary"].startswith(f"clock: {info['clock_mhz']:g} MHz from a ")


def test_icebreaker_auto_clock_rebuilds_with_a_pll_when_fmax_allows(tiny, tmp_path):
    info = build(tiny, "icebreaker", tmp_path, [(4, 8), (4, 8)])
    check_build(info, tmp_path, "bin", "icebreaker", "ice40-up5k")
    check_pll_build(info, tmp_path, 12)
    first, last = info["clock"]["attempts"]
    assert first["source"] == "board" and first["fmax_mhz"] >= 1.25 * 12
    assert last["source"] == "pll" and last["clock_mhz"] <= 0.9 * first["fmax_mhz"]
    assert info["pll"]["primitive"] == "SB_PLL40_PAD"
    assert info["pll"]["requested_mhz"] == pytest.approx(0.9 * first["fmax_mhz"])


def test_icebreaker_build_at_a_requested_pll_clock(tiny, tmp_path):
    info = build(tiny, "icebreaker", tmp_path, [(4, 8), (4, 8)], clock=25)
    check_build(info, tmp_path, "bin", "icebreaker", "ice40-up5k")
    check_pll_build(info, tmp_path, 12)
    assert info["clock_mhz"] == 24.75 and info["protocol"]["divisor"] == 215
    assert info["pll"]["params"] == {"FEEDBACK_PATH": "SIMPLE", "DIVR": 0, "DIVF": 65,
                                     "DIVQ": 5, "FILTER_RANGE": 1}
    assert len(info["clock"]["attempts"]) == 1


@pytest.mark.slow
def test_ulx3s_build_writes_a_bitstream(tiny, tmp_path):
    info = build(tiny, "ulx3s", tmp_path, clock="board")
    check_build(info, tmp_path, "bit", "ulx3s", "ecp5-85k")
    assert info["clock_mhz"] == 25 and info["protocol"]["divisor"] == 217


@pytest.mark.slow
@pytest.mark.parametrize(("board", "target", "suffix", "board_mhz", "mhz", "primitive"), [
    ("ulx3s", "ecp5-85k", "bit", 25, 50, "EHXPLLL"),
    ("ice40-hx8k-evn", "ice40-hx8k", "bin", 12, 39.75, "SB_PLL40_CORE"),
])
def test_pll_builds_on_other_boards(tiny, tmp_path, board, target, suffix, board_mhz, mhz,
                                    primitive):
    info = build(tiny, board, tmp_path, clock=mhz)
    check_build(info, tmp_path, suffix, board, target)
    check_pll_build(info, tmp_path, board_mhz)
    assert info["pll"]["primitive"] == primitive and info["clock_mhz"] == mhz


@pytest.mark.parametrize(("board", "pll", "params", "constraint"), [
    ("icebreaker", ice40_pll(12e6, 30e6, primitive="SB_PLL40_PAD"),
     {"DIVR": 0, "DIVF": 79, "DIVQ": 5, "FILTER_RANGE": 1}, "set_frequency clk12_0__io 12.0"),
    ("ice40-hx8k-evn", ice40_pll(12e6, 40e6, primitive="SB_PLL40_CORE"),
     {"DIVR": 0, "DIVF": 52, "DIVQ": 4, "FILTER_RANGE": 1}, "set_frequency clk12_0__io 12.0"),
    ("ulx3s", ecp5_pll(25e6, 60e6),
     {"CLKI_DIV": 5, "CLKFB_DIV": 12, "CLKOP_DIV": 10, "CLKOP_CPHASE": 5},
     'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ'),
])
def test_pll_top_netlist_has_the_primitive_its_parameters_and_the_clock(tiny, board, pll,
                                                                          params, constraint):
    brd = get_board(board)
    assert brd.pll == pll.primitive
    platform = brd.make_platform()
    divisor = round(pll.f_out_hz / 115200)
    plan = platform.prepare(BoardTop(UartTop(tiny, divisor=divisor), brd.leds, pll),
                            name="top")
    netlist = plan.files["top.il"]
    cell = re.search(rf"cell \\{pll.primitive} .*?\n  end", netlist, re.S)
    assert cell, f"no {pll.primitive} in the netlist"
    for name, value in params.items():
        assert f"parameter \\{name} {value}\n" in cell.group(0)
    assert "connect \\LOCK \\pll_lock" in cell.group(0)
    # The board clock keeps its constraint; nextpnr derives the PLL output's from it.
    constraints = plan.files["top.pcf" if pll.family == "ice40" else "top.lpf"]
    assert constraint in constraints


def fake_attempts(outcomes):
    """An ``_attempt`` that follows ``outcomes``: fmax reached, or ('miss', reached)."""
    calls = []

    def attempt(*, pll, attempts, works, **job):
        outcome = outcomes[len(calls)]
        clk = 12.0 if pll is None else pll.f_out_hz / 1e6
        calls.append(clk)
        attempts.append({"source": "board" if pll is None else "pll", "clock_mhz": clk})
        if outcome == "tool":
            raise ToolError("build failed (exit status 1); last lines of its log:\nboom")
        if isinstance(outcome, tuple):
            attempts[-1].update(fmax_mhz=outcome[1], timing_met=False)
            raise build_module._TimingMissed(outcome[1])
        return {"fmax_mhz": outcome, "clock_mhz": clk,
                "pll": pll.as_dict() if pll else None}, f"work{len(calls)}"

    return attempt, calls


@pytest.mark.parametrize(("outcomes", "clocks", "source", "summary"), [
    ([14.0], [12.0], "board", "clock: the board's 12 MHz oscillator (Fmax 14.0 MHz is under "
                              "1.25x the board clock: no PLL)"),
    ([40.0, 38.0], [12.0, 36.0], "pll", "clock: 36 MHz from a SB_PLL40_PAD (DIVR 0, DIVF 47, "
                                        "DIVQ 4, FILTER_RANGE 1) on the 12 MHz board clock "
                                        "(Fmax 38.0 MHz; 0.9 x the board-clock Fmax 40.0 MHz "
                                        "asked for)"),
    ([40.0, ("miss", 30.0), 28.0], [12.0, 36.0, 27.0], "pll",
     "clock: 27 MHz from a SB_PLL40_PAD (DIVR 0, DIVF 71, DIVQ 5, FILTER_RANGE 1) on the 12 "
     "MHz board clock (Fmax 28.0 MHz; 0.9 x the board-clock Fmax 40.0 MHz asked for, stepped "
     "down once after a missed timing)"),
    ([40.0, ("miss", 30.0), ("miss", 25.0), 23.0], [12.0, 36.0, 27.0, 22.5], "pll",
     "clock: 22.5 MHz from a SB_PLL40_PAD (DIVR 0, DIVF 59, DIVQ 5, FILTER_RANGE 1) on the 12 "
     "MHz board clock (Fmax 23.0 MHz; 0.9 x the board-clock Fmax 40.0 MHz asked for, stepped "
     "down twice after missed timings)"),
    ([40.0, ("miss", 30.0), ("miss", 25.0), ("miss", 20.0)], [12.0, 36.0, 27.0, 22.5], "board",
     "clock: the board's 12 MHz oscillator (PLL clocks of 36, 27 and 22.5 MHz missed timing: "
     "fell back to the board clock)"),
    ([17.0], [12.0], "board", "clock: the board's 12 MHz oscillator (no PLL: the ice40 PLL "
                              "cannot make 15.3 MHz: its output range is 16-275 MHz; choose "
                              "another --clock)"),
    ([40.0, "tool"], [12.0, 36.0], "board",
     "clock: the board's 12 MHz oscillator (the 36 MHz PLL build failed: build failed (exit "
     "status 1); last lines of its log:; log in OUT/build-pll-failed.log)"),
])
def test_auto_clock_steps_down_twice_then_falls_back(monkeypatch, tmp_path, outcomes, clocks,
                                                    source, summary):
    attempt, calls = fake_attempts(outcomes)
    monkeypatch.setattr(build_module, "_attempt", attempt)
    brd = get_board("icebreaker")
    job = {"brd": brd, "tgt": get_target(brd.target), "say": lambda msg: None, "baud": 115200,
           "out_dir": tmp_path}
    (tmp_path / "build.log").write_text("failed PLL build\n")
    info, work, got_source, got_summary = build_module._auto(12e6, [], [], job)
    summary = summary.replace("OUT", str(tmp_path))
    assert calls == clocks
    assert got_source == source and got_summary == summary
    assert work == ("work1" if source == "board" else f"work{len(calls)}")
    if "tool" in outcomes:
        assert (tmp_path / "build-pll-failed.log").read_text() == "failed PLL build\n"


def test_failing_tool_leaves_no_bitstream(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTPNR_ICE40", "false")
    with pytest.raises(ToolError) as info:
        build(tiny, "icebreaker", tmp_path)
    assert str(info.value).startswith("build failed (exit status 1); last lines of its log:\n")
    assert str(info.value).endswith(f"full log: {tmp_path / 'build.log'}")
    assert [p.name for p in tmp_path.iterdir()] == ["build.log"]


def test_a_build_over_its_tool_timeout_stops_the_tools_and_says_so(tiny, tmp_path, monkeypatch):
    import time
    from pathlib import Path

    pid_file = tmp_path / "yosys.pid"
    stuck = tmp_path / "stuck-yosys"
    stuck.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    stuck.chmod(0o755)
    monkeypatch.setenv("YOSYS", str(stuck))
    out = tmp_path / "out"
    start = time.monotonic()
    with pytest.raises(ToolError, match=r"^build was stopped after its time limit of 2 s"):
        build(tiny, "icebreaker", out, tool_timeout=2)
    assert time.monotonic() - start < 30
    # The build script's child ended with it (gone, or a zombie nobody reaped yet).
    stat = Path(f"/proc/{int(pid_file.read_text())}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert [p.name for p in out.iterdir()] == ["build.log"]


def test_weights_too_large_for_the_board_memories(tmp_path, monkeypatch):
    model = random_model([256, 256, 10], seed=0)
    # 32 words of 2048 bits: 128 block RAMs, or in LUTs about 2048 x (0.15 x 32 - 0.6) + 10 x 256.
    with pytest.raises(DoesNotFit, match=r"^the weight ROMs of folding 16x128,1x256 need at "
                                         r"least \d+ block RAMs, the icebreaker \(ice40-up5k\) "
                                         r"has 30 \(\d+ too many\), and about 8858 LUT4 in "
                                         r"logic; try --fold fit, or --fold auto --ii \d+ "
                                         r"\(estimated to fit\)$"):
        build(model, "icebreaker", tmp_path, [(16, 128), (1, 256)])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"board": "de0"}, "unknown board 'de0'; choose one of " + ", ".join(BOARDS)),
    ({"board": "icebreaker", "baud": 5_000_000},
     "the icebreaker's 12 MHz clock cannot make 5000000 baud within 2 %; choose another --baud"),
    ({"board": "icebreaker", "baud": 7_000_000, "clock": 40},
     "the icebreaker's 39.75 MHz PLL clock (from --clock 40) cannot make 7000000 baud within "
     "2 %; choose another --baud"),
    ({"board": "icebreaker", "clock": 2000},
     "the ice40 PLL cannot make 2000 MHz: its output range is 16-275 MHz; choose another "
     "--clock"),
    ({"board": "ulx3s", "clock": 500},
     "the ecp5 PLL cannot make 500 MHz: its output range is 10-400 MHz; choose another "
     "--clock"),
    ({"board": "icebreaker", "clock": "fast"},
     "--clock must be auto, board or a frequency in MHz, not 'fast'"),
    ({"board": "icebreaker", "folding": "9x3,1x1"},
     "layer 0 (fc0, 16 inputs, 8 neurons): pe must be an integer in 1..8, not 9"),
    ({"board": "icebreaker", "folding": "auto"}, "fold 'auto' needs a target II (--ii CYCLES)"),
    ({"board": "icebreaker", "baud": 0}, "--baud must be a positive UART rate, such as 115200, "
                                         "not 0"),
    ({"board": "icebreaker", "baud": -9600}, "--baud must be a positive UART rate"),
])
def test_bad_build_requests_are_refused(tiny, tmp_path, kwargs, message):
    with pytest.raises(BnnflowError, match="^" + re.escape(message)):
        build(tiny, out_dir=tmp_path / "new" / "out", **kwargs)
    assert not (tmp_path / "new").exists()         # no folder made for a refused build


def test_cli_build_prints_the_protocol(tiny, tmp_path, capsys):
    model_path = tmp_path / "tiny.bnn"
    artifact.save(tiny, model_path)
    out = tmp_path / "out"
    status = main(["build", str(model_path), "--board", "icebreaker", "--class-only",
                   "--clock", "24", "-o", str(out)])
    text = capsys.readouterr().out
    assert status == 0
    assert (out / "top.bin").exists()
    assert ("clock: 24 MHz from a SB_PLL40_PAD (DIVR 0, DIVF 63, DIVQ 5, FILTER_RANGE 1) on the "
            "12 MHz board clock (asked for at most 24 MHz)\n") in text
    assert "protocol: 8N1 at 115200 baud; send 2 bytes per image, receive 1 (class index" in text
    info = json.loads((out / "build.json").read_text())
    # 2 request bytes at 24 MHz / 208 = 115384.6 baud, 10 bits a byte.
    assert info["link_images_per_second"] == 5769.2
    assert "(class index (1 byte)); the link carries at most 5,769.2 images/s\n" in text
    assert f"bnnflow run-board {model_path} --port PORT --class-only" in text


@pytest.mark.parametrize(("argv", "message"), [
    (["--board", "nope"], "error: unknown board 'nope'"),
    (["--board", "icebreaker", "--clock", "2000"],
     "error: the ice40 PLL cannot make 2000 MHz: its output range is 16-275 MHz; choose "
     "another --clock\n"),
    (["--board", "icebreaker", "--clock", "-3"],
     "error: --clock must be auto, board or a frequency in MHz, not '-3'\n"),
    (["--board", "icebreaker", "--baud", "0"],
     "error: --baud must be a positive UART rate, such as 115200, not 0\n"),
    (["--board", "icebreaker", "--fold", "0x1,1x1"], "error: layer 0 (fc0, 16 inputs, 8 "
                                                     "neurons): pe must be"),
])
def test_cli_build_bad_request_exits_2(tiny, tmp_path, capsys, argv, message):
    model_path = tmp_path / "tiny.bnn"
    artifact.save(tiny, model_path)
    assert main(["build", str(model_path), *argv, "-o", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith(message)
    assert not (tmp_path / "o").exists()


def failing_tools(monkeypatch, files):
    """Make Amaranth's build script fail after leaving ``files`` (name: text) in the build
    directory, as Yosys and nextpnr leave them; return the error it raises."""
    error = ToolError("build failed (exit status 1); last lines of its log:\nboom")

    def run_step(step, argv, *, cwd, **kw):
        for name, text in files.items():
            (cwd / name).write_text(text)
        raise error

    monkeypatch.setattr(build_module, "run_step", run_step)
    return error


def stat_json(by_type):
    return json.dumps({"design": {"num_cells_by_type": {"$scopeinfo": 4, **by_type}}})


@pytest.mark.parametrize("clock", ["board", "auto"])
def test_board_clock_missed_becomes_a_clear_error(tiny, tmp_path, monkeypatch, clock):
    # What nextpnr leaves in top.tim when the board clock is missed.
    failing_tools(monkeypatch, {"top.tim": "Info: Max frequency for clock 'clk12_0__io': 9.87 "
                                           "MHz (FAIL at 12.00 MHz)\n"})
    with pytest.raises(DoesNotFit) as info:
        build(tiny, "icebreaker", tmp_path, clock=clock)
    assert str(info.value) == ("the design reaches 9.9 MHz, the icebreaker's clock is 12 MHz: "
                               "add popcount pipeline stages (--pipeline 1 or 2) or fold the "
                               "widest layers (--fold auto --ii CYCLES)")
    assert list(tmp_path.iterdir()) == []


LOGIC_OVERFLOW = ("the design needs 6000 LUT4, 10 FF (about 6007 logic cells) and 0 block RAMs "
                  "(folding 8x16,4x8); the icebreaker (ice40-up5k) has 5280 logic cells and 30 "
                  "block RAMs; no folding of this network is expected to fit; choose a larger "
                  "target (ice40-hx8k, board ice40-hx8k-evn, with --fold auto --ii 1 is expected "
                  "to fit)")


def test_logic_overflow_in_a_board_build_becomes_a_fit_error(tiny, tmp_path, monkeypatch):
    failing_tools(monkeypatch, {"stat.json": stat_json({"SB_LUT4": 6000, "SB_DFF": 10,
                                                        "SB_CARRY": 3})})
    with pytest.raises(NotPlaced) as info:
        build(tiny, "icebreaker", tmp_path, clock="board")
    assert str(info.value) == LOGIC_OVERFLOW
    assert info.value.need == 6007
    assert list(tmp_path.iterdir()) == []


def test_logic_overflow_is_read_from_the_yosys_counts(tiny, tmp_path):
    (tmp_path / "stat.json").write_text(stat_json({"SB_LUT4": 6000, "SB_DFF": 10,
                                                   "SB_CARRY": 3}))
    board = get_board("icebreaker")
    with pytest.raises(NotPlaced) as info:
        _explain_fit(tmp_path, tiny, fully_parallel(tiny), "8x16,4x8", get_target(board.target),
                     board)
    assert str(info.value) == LOGIC_OVERFLOW


def test_unplaceable_flip_flops_in_a_board_build_become_a_fit_error(tmp_path):
    # Measured on the UP5K: 784-64-64-64-10 at II 512 has 2939 LUT4 and 4456 FF, and nextpnr
    # needs 6199 logic cells for them. The hint must not repeat II 512.
    model = random_model([784, 64, 64, 64, 10], seed=0)
    fold = build_module.checked_folding(model, "auto", 512, get_target("ice40-up5k"))[0]
    (tmp_path / "stat.json").write_text(stat_json({"SB_LUT4": 2939, "SB_DFFESR": 4456}))
    (tmp_path / "top.tim").write_text("Info: \t         ICESTORM_LC:    6199/   5280   117%\n"
                                      "ERROR: Unable to place cell 'x'\n")
    board = get_board("icebreaker")
    with pytest.raises(NotPlaced) as info:
        _explain_fit(tmp_path, model, fold, "text", get_target(board.target), board)
    assert str(info.value) == (
        "the design needs 2939 LUT4, 4456 FF (about 6199 logic cells) and 0 block RAMs "
        "(folding text); the icebreaker (ice40-up5k) has 5280 logic cells and 30 block RAMs; "
        "no folding of this network is expected to fit; choose a larger target (ice40-hx8k, "
        "board ice40-hx8k-evn, with --fold auto --ii 256 is expected to fit)")
    assert info.value.need == 6199


def test_an_ecp5_build_counts_carry_cells_and_lut_ram_as_nextpnr_packs_them(tiny, tmp_path):
    # 83000 + 3.2 x 250 + 6 x 34 TRELLIS_COMB (tool_reports.ECP5_COMB_PER_CARRY, _LUTRAM).
    (tmp_path / "stat.json").write_text(stat_json({"LUT4": 83000, "CCU2C": 250,
                                                   "TRELLIS_DPR16X4": 34, "TRELLIS_FF": 900}))
    board = get_board("ulx3s")
    with pytest.raises(NotPlaced) as info:
        _explain_fit(tmp_path, tiny, fully_parallel(tiny), "8x16,4x8", get_target(board.target),
                     board)
    assert str(info.value) == ("the design needs 84004 LUT4, 900 FF (about 84004 logic cells) "
                               "and 0 block RAMs (folding 8x16,4x8); the ulx3s (ecp5-85k) has "
                               "83640 logic cells and 208 block RAMs; no folding of this network "
                               "is expected to fit; no supported target is expected to fit it")
    assert info.value.need == 84004


def test_a_build_that_fits_is_not_explained(tiny, tmp_path):
    (tmp_path / "stat.json").write_text(stat_json({"SB_LUT4": 300, "SB_DFF": 10}))
    (tmp_path / "top.tim").write_text("ERROR: something else\n")
    board = get_board("icebreaker")
    assert _explain_fit(tmp_path, tiny, fully_parallel(tiny), "8x16,4x8",
                        get_target(board.target), board) is None


def test_unexplained_failure_stays_a_tool_error(tiny, tmp_path, monkeypatch):
    error = failing_tools(monkeypatch, {"top.tim": "ERROR: something else\n",
                                        "stat.json": stat_json({"SB_LUT4": 300})})
    with pytest.raises(ToolError) as info:
        build(tiny, "icebreaker", tmp_path, clock="board")
    assert info.value is error
    assert list(tmp_path.iterdir()) == []


def test_build_fold_fit_reports_the_folding_that_placed_and_every_attempt(tiny, tmp_path,
                                                                          capsys):
    model_path = tmp_path / "tiny.bnn"
    artifact.save(tiny, model_path)
    out = tmp_path / "fit"
    assert main(["build", str(model_path), "--board", "icebreaker", "--fold", "fit",
                 "--clock", "board", "-o", str(out)]) == 0
    info = json.loads((out / "build.json").read_text())
    assert {"folding", "ii", "lut4", "ff", "bram", "fmax_mhz", "clock_mhz",
            "images_per_second", "attempts"} <= set(info)
    assert info["attempts"] == [{"folding": info["folding"], "ii": info["ii"], "placed": True}]
    assert info["images_per_second"] == round(info["clock_mhz"] * 1e6 / info["ii"])
    assert (info["lut4"], info["ff"], info["bram"]) == tuple(
        info["resources"][k] for k in ("lut4", "ff", "bram"))
    text = capsys.readouterr().out
    assert f"fit: {info['folding']} (II {info['ii']}) placed\n" in text
    assert f"{info['images_per_second']:,} images/s" in text


def test_build_fold_fit_refuses_an_ii(tiny, tmp_path, capsys):
    model_path = tmp_path / "tiny.bnn"
    artifact.save(tiny, model_path)
    assert main(["build", str(model_path), "--board", "icebreaker", "--fold", "fit", "--ii",
                 "4", "-o", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == ("error: --ii does not apply with --fold fit (it chooses "
                                       "the II)\n")
    assert not (tmp_path / "o").exists()
