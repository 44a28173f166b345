"""Bitstreams for boards: the UART inference top on an amaranth-boards platform.

:func:`build` puts :class:`~bnnflow.boards.uart_top.UartTop` on a board's UART and LEDs,
clocked directly by the board's oscillator (no PLL: the UART and the network share that clock;
the UART divisor is ``round(clk / baud)``), lets Amaranth write the build plan (RTLIL, Yosys
script, constraints, build script) and runs that script with ``YOSYS``, ``NEXTPNR_*``,
``ICEPACK`` / ``ECPPACK`` pointing at the tools :func:`bnnflow.boards.tools.find_tool` finds.
nextpnr checks the board clock: a design too slow for it fails with the frequency it reached.

Everything happens in a temporary directory inside the output directory; the bitstream and
``build.json`` move into place only when every step succeeded.
"""

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io

from ..errors import BnnflowError, ToolError
from ..fileio import write_text_atomic
from .platforms import BOARDS, Board, get_board
from .synth import (
    DoesNotFit,
    _fit_hint,
    cell_counts,
    checked_folding,
)
from .targets import get_target
from .tools import log_tail, run_step, tool_env

__all__ = ["Board", "BOARDS", "get_board", "build", "BoardTop"]


class BoardTop(Elaboratable):
    """Glue a :class:`UartTop` to a platform's ``uart`` and first ``leds`` ``led`` pins."""

    def __init__(self, core, leds):
        self.core = core
        self.leds = leds

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(rx.i), tx.o.eq(core.tx)]
        for i in range(self.leds):
            m.submodules[f"led_{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            m.d.comb += led.o.eq(core.leds[i])
        return m


def _timing_failure(log_text):
    found = re.findall(r"Max frequency for clock\s+'([^']*)':\s*([\d.]+) MHz \(FAIL at "
                       r"([\d.]+) MHz\)", log_text)
    return found[-1] if found else None


def build(model, board, out_dir, folding=None, *, ii=None, pipeline=0, baud=115200,
          popcounts=True, progress=None):
    """Build a bitstream of ``model``'s UART top for ``board`` into ``out_dir``.

    Writes ``out_dir/top.bin`` (iCE40) or ``out_dir/top.bit`` (ECP5), ``out_dir/build.json``
    (board, clock, baud, folding, protocol, Fmax, step time) and the tool logs.

    Returns
    -------
    dict
        The ``build.json`` contents; ``"bitstream"`` is its path.

    Raises
    ------
    BnnflowError
        Unknown board, bad folding, a baud rate the clock cannot make.
    DoesNotFit
        Weights or logic too large for the board's FPGA (with a folding that should fit), or
        a design too slow for the board clock (with the frequency reached).
    ToolError
        A tool is missing or fails (tail of the log and where the full log is).
    """
    from ..model.artifact import model_checksum
    from .uart_top import UartTop

    brd = get_board(board)
    tgt = get_target(brd.target)
    say = progress or (lambda msg: None)
    platform = brd.make_platform()
    clk = platform.default_clk_frequency
    divisor = round(clk / baud)
    if divisor < 2 or abs(clk / divisor - baud) / baud > 0.02:
        raise BnnflowError(f"the {brd.name}'s {clk / 1e6:g} MHz clock cannot make {baud} baud "
                           f"within 2 %; choose another --baud")
    fold, fold_text = checked_folding(model, folding, ii, tgt, f"{brd.name} ({tgt.name})")
    env = tool_env(["yosys", f"nextpnr-{tgt.family}",
                    "icepack" if tgt.family == "ice40" else "ecppack"])
    try:
        core = UartTop(model, fold, pipeline, divisor=divisor, popcounts=popcounts)
    except ValueError as e:
        raise BnnflowError(str(e)) from None

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=out_dir))
    try:
        say(f"prepare the build plan for {brd.name} ({fold_text}, divisor {divisor})")
        t = time.perf_counter()
        plan = platform.prepare(BoardTop(core, brd.leds), name="top",
                                script_after_synth="tee -q -o stat.json stat -json",
                                nextpnr_opts="--report pnr.json --seed 1")
        plan.extract(work)
        steps = {"prepare": round(time.perf_counter() - t, 3)}
        say("yosys, nextpnr and the bitstream packer (Amaranth's build script)")
        try:
            steps["tools"] = round(run_step("build", ["sh", f"{plan.script}.sh"], cwd=work,
                                            log=work / "build.log", keep_log_dir=out_dir,
                                            env=env), 3)
        except ToolError:
            _explain_failure(work, model, fold, fold_text, tgt, brd, clk)
            raise
        stat = json.loads((work / "stat.json").read_text(encoding="utf-8"))
        by_type = {k: v for k, v in stat["design"]["num_cells_by_type"].items()
                   if not k.startswith("$")}
        pnr = json.loads((work / "pnr.json").read_text(encoding="utf-8"))
        fmax = [c["achieved"] for c in pnr.get("fmax", {}).values() if "achieved" in c]
        suffix = "bin" if tgt.family == "ice40" else "bit"
        manifest, _ = model.manifest()
        info = {
            "board": brd.name, "target": tgt.name, "clock_mhz": clk / 1e6, "pll": False,
            "baud": baud, "baud_actual": round(clk / divisor, 1),
            "fmax_mhz": round(min(fmax), 2) if fmax else None,
            "folding": fold_text, "pipeline": pipeline, "ii": core.bnn.ii,
            "latency": core.bnn.latency, "protocol": core.protocol(),
            "resources": cell_counts(tgt.family, by_type),
            "model_checksum": model_checksum(manifest), "step_seconds": steps,
            "bitstream": str(out_dir / f"top.{suffix}"), "port_hint": brd.port_hint,
        }
        os.replace(work / f"top.{suffix}", out_dir / f"top.{suffix}")
        for log in ("build.log", "top.rpt", "top.tim"):
            if (work / log).exists():
                os.replace(work / log, out_dir / log)
        write_text_atomic(out_dir / "build.json", json.dumps(info, indent=2) + "\n")
        return info
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _explain_failure(work, model, fold, fold_text, tgt, brd, clk):
    """Turn a failed build into a fit or timing error when the logs say so."""
    stat_path = work / "stat.json"
    if stat_path.exists():
        stat = json.loads(stat_path.read_text(encoding="utf-8"))
        counts = cell_counts(tgt.family, stat["design"]["num_cells_by_type"])
        logic = counts["lut4"] + (2 * counts["carry"] if tgt.family == "ecp5" else 0)
        if logic > tgt.lut4 or counts["bram"] > tgt.bram:
            raise DoesNotFit(
                f"the design needs {logic} LUT4 and {counts['bram']} block RAMs (folding "
                f"{fold_text}); the {brd.name} ({tgt.name}) has {tgt.lut4} and {tgt.bram}; "
                f"{_fit_hint(model, fold, logic, tgt.lut4, tgt.bram, tgt.family)}") from None
    timing = _timing_failure(log_tail(work / "top.tim", 400) + log_tail(work / "build.log", 400))
    if timing:
        _, reached, wanted = timing
        raise DoesNotFit(
            f"the design reaches {float(reached):.1f} MHz, the {brd.name}'s clock is "
            f"{clk / 1e6:g} MHz: add popcount pipeline stages (--pipeline 1 or 2) or fold the "
            f"widest layers (--fold auto --ii CYCLES)") from None
