"""Board bitstreams: iCEBreaker (and ULX3S, slow), errors leave no output behind."""

import json
import re

import pytest

from bnnflow.boards.build import BOARDS, _explain_failure, build
from bnnflow.boards.platforms import get_board
from bnnflow.boards.synth import DoesNotFit
from bnnflow.boards.targets import get_target
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
    assert info["pll"] is False
    assert info["fmax_mhz"] >= info["clock_mhz"]
    assert info["protocol"]["request_bytes"] == 2
    assert info["protocol"]["reply_bytes"] == 5
    assert info["resources"]["lut4"] > 0
    assert json.loads((out / "build.json").read_text()) == info
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_icebreaker_build_writes_a_bitstream(tiny, tmp_path):
    info = build(tiny, "icebreaker", tmp_path, [(4, 8), (4, 8)])
    check_build(info, tmp_path, "bin", "icebreaker", "ice40-up5k")
    assert info["clock_mhz"] == 12 and info["protocol"]["divisor"] == 104
    assert info["ii"] == 4           # layer 0: ceil(8/4) * ceil(16/8)


@pytest.mark.slow
def test_ulx3s_build_writes_a_bitstream(tiny, tmp_path):
    info = build(tiny, "ulx3s", tmp_path)
    check_build(info, tmp_path, "bit", "ulx3s", "ecp5-85k")
    assert info["clock_mhz"] == 25 and info["protocol"]["divisor"] == 217


def test_failing_tool_leaves_no_bitstream(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTPNR_ICE40", "false")
    with pytest.raises(ToolError) as info:
        build(tiny, "icebreaker", tmp_path)
    assert str(info.value).startswith("build failed (exit status 1); last lines of its log:\n")
    assert str(info.value).endswith(f"full log: {tmp_path / 'build.log'}")
    assert [p.name for p in tmp_path.iterdir()] == ["build.log"]


def test_weights_too_large_for_the_board_memories(tmp_path, monkeypatch):
    model = random_model([256, 256, 10], seed=0)
    with pytest.raises(DoesNotFit, match=r"^the weight ROMs of folding 128x128,1x256 need at "
                                         r"least \d+ block RAMs, the icebreaker \(ice40-up5k\) "
                                         r"has 30 \(\d+ too many\), and about 16640 LUT4 in "
                                         r"logic; try --fold auto --ii \d+ \(estimated to fit\)$"):
        build(model, "icebreaker", tmp_path, [(128, 128), (1, 256)])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"board": "de0"}, "unknown board 'de0'; choose one of " + ", ".join(BOARDS)),
    ({"board": "icebreaker", "baud": 5_000_000},
     "the icebreaker's 12 MHz clock cannot make 5000000 baud within 2 %; choose another --baud"),
    ({"board": "icebreaker", "folding": "9x3,1x1"},
     "layer 0 (fc0, 16 inputs, 8 neurons): pe must be an integer in 1..8, not 9"),
])
def test_bad_build_requests_are_refused(tiny, tmp_path, kwargs, message):
    with pytest.raises(BnnflowError, match="^" + re.escape(message)):
        build(tiny, out_dir=tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_cli_build_prints_the_protocol(tiny, tmp_path, capsys):
    model_path = tmp_path / "tiny.bnn"
    artifact.save(tiny, model_path)
    out = tmp_path / "out"
    status = main(["build", str(model_path), "--board", "icebreaker", "--class-only",
                   "-o", str(out)])
    text = capsys.readouterr().out
    assert status == 0
    assert (out / "top.bin").exists()
    assert "protocol: 8N1 at 115200 baud; send 2 bytes per image, receive 1 (class index" in text
    assert f"bnnflow run-board {model_path} --port PORT --class-only" in text


def test_cli_build_unknown_board_exits_2(tiny, tmp_path, capsys):
    model_path = tmp_path / "tiny.bnn"
    artifact.save(tiny, model_path)
    assert main(["build", str(model_path), "--board", "nope", "-o", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: unknown board 'nope'")
    assert not (tmp_path / "o").exists()


def test_board_clock_missed_becomes_a_clear_error(tiny, tmp_path):
    # What nextpnr leaves in top.tim when the board clock is missed.
    (tmp_path / "top.tim").write_text(
        "Info: Max frequency for clock 'clk12_0__io': 9.87 MHz (FAIL at 12.00 MHz)\n")
    board = get_board("icebreaker")
    with pytest.raises(DoesNotFit, match=r"^the design reaches 9\.9 MHz, the icebreaker's clock "
                                         r"is 12 MHz: add popcount pipeline stages \(--pipeline 1"
                                         r" or 2\) or fold the widest layers"):
        _explain_failure(tmp_path, tiny, fully_parallel(tiny), "8x16,4x8",
                         get_target(board.target), board, 12e6)


def test_logic_overflow_in_a_board_build_becomes_a_fit_error(tiny, tmp_path):
    stat = {"design": {"num_cells_by_type": {"SB_LUT4": 6000, "SB_DFF": 10, "SB_CARRY": 3}}}
    (tmp_path / "stat.json").write_text(json.dumps(stat))
    board = get_board("icebreaker")
    with pytest.raises(DoesNotFit, match=r"^the design needs 6000 LUT4 and 0 block RAMs \("
                                         r"folding 8x16,4x8\); the icebreaker \(ice40-up5k\) has "
                                         r"5280 and 30; try --fold auto --ii \d+"):
        _explain_failure(tmp_path, tiny, fully_parallel(tiny), "8x16,4x8",
                         get_target(board.target), board, 12e6)


def test_unexplained_failure_stays_a_tool_error(tiny, tmp_path):
    (tmp_path / "top.tim").write_text("ERROR: something else\n")
    board = get_board("icebreaker")
    assert _explain_failure(tmp_path, tiny, fully_parallel(tiny), "8x16,4x8",
                            get_target(board.target), board, 12e6) is None
