"""Bitstreams for boards: the UART inference top on an amaranth-boards platform.

:func:`build` puts :class:`~bnnflow.boards.uart_top.UartTop` on a board's UART and LEDs, lets
Amaranth write the build plan (RTLIL, Yosys script, constraints, build script) and runs that
script with ``YOSYS``, ``NEXTPNR_*``, ``ICEPACK`` / ``ECPPACK`` pointing at the tools
:func:`bnnflow.boards.tools.find_tool` finds. nextpnr checks the clock: a design too slow for
it fails with the frequency it reached.

The clock (``clock=``, ``--clock``):

* ``"board"``: the board's oscillator drives the design directly.
* a frequency in MHz: a PLL (:mod:`bnnflow.boards.pll`) makes the highest frequency it can
  that is not above it.
* ``"auto"`` (default): build on the board clock first; if the placed design's Fmax is at
  least :data:`PLL_MARGIN` times the board clock, build again with a PLL at the highest
  achievable frequency not above :data:`PLL_TARGET` times that Fmax. If nextpnr misses it,
  step down (to :data:`PLL_TARGET` times the frequency reached, at most :data:`PLL_STEPS`
  times), then fall back to the
  board-clock build, saying so.

With a PLL the design is held in reset until the PLL's ``LOCK`` has been high for 15 us (the
iCE40 block RAMs read as zero for about 3 us after configuration). The UART divisor is
``round(clk / baud)`` of the clock actually generated, within 2 % of ``baud``.

Everything happens in a temporary directory inside the output directory; the bitstream and
``build.json`` move into place only when every step succeeded.
"""

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import FFSynchronizer

from ..errors import BnnflowError, ToolError, first_line
from ..fileio import log_tail, make_output_dir, write_text_atomic
from ..tool_reports import placed_logic, read_pnr_report, read_stat, timing_failure, unplaceable
from .estimate import measured_need
from .fit import DoesNotFit, NotPlaced, _fit_hint, checked_folding, fit_by_placement
from .platforms import BOARDS, Board, get_board
from .pll import pll_for
from .targets import get_target
from .tools import run_step, tool_env

__all__ = ["Board", "BOARDS", "get_board", "build", "BoardTop", "parse_clock", "PLL_MARGIN",
           "PLL_TARGET", "PLL_STEPS"]

#: ``--clock auto`` adds a PLL only when the board-clock Fmax is at least this times the clock.
PLL_MARGIN = 1.25
#: ``--clock auto`` asks the PLL for at most this fraction of the measured Fmax.
PLL_TARGET = 0.9
#: Step-downs ``--clock auto`` makes after a PLL build misses its clock, each to
#: :data:`PLL_TARGET` times the Fmax it reached: Fmax moves with the constraint, so one step
#: was not always enough (boards/README.md, "Clock and PLL").
PLL_STEPS = 2
#: Reset held after the PLL locks, in seconds.
LOCK_DELAY = 15e-6


def parse_clock(value):
    """``"auto"``, ``"board"`` or a positive frequency in MHz (float) from ``--clock``.

    Raises
    ------
    BnnflowError
        Anything else.
    """
    if isinstance(value, str) and value in ("auto", "board"):
        return value
    try:
        mhz = float(value)
    except (TypeError, ValueError):
        mhz = None
    if mhz is None or not mhz > 0 or mhz == float("inf"):
        raise BnnflowError(f"--clock must be auto, board or a frequency in MHz, not {value!r}")
    return mhz


class BoardTop(Elaboratable):
    """Glue a :class:`UartTop` to a platform's ``uart`` and first ``leds`` ``led`` pins.

    Parameters
    ----------
    core : UartTop
    leds : int
        LEDs to drive.
    pll : PllConfig or None
        ``None``: the platform's default clock domain (the board oscillator). Otherwise the
        ``sync`` domain is the PLL's output, in reset until ``LOCK`` has been high for
        :data:`LOCK_DELAY` seconds (nextpnr derives its clock constraint from the board
        clock's).

    Attributes
    ----------
    lock : Signal or None
        The PLL's ``LOCK`` output (with a PLL).
    """

    def __init__(self, core, leds, pll=None):
        self.core = core
        self.leds = leds
        self.pll = pll
        self.lock = Signal(name="pll_lock") if pll is not None else None

    def elaborate(self, platform):
        m = Module()
        if self.pll is not None:
            self._clock_from_pll(m, platform)
        m.submodules.core = core = self.core
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(rx.i), tx.o.eq(core.tx)]
        for i in range(self.leds):
            m.submodules[f"led_{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            m.d.comb += led.o.eq(core.leds[i])
        return m

    def _clock_from_pll(self, m, platform):
        pll = self.pll
        clk_pin = platform.request(platform.default_clk, 0, dir="-")
        clk_out = Signal(name="pll_clk")
        ports = {}
        if pll.primitive == "SB_PLL40_PAD":
            ports["io_PACKAGEPIN"] = clk_pin.io
        else:
            m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_pin)
            ports["i_REFERENCECLK" if pll.family == "ice40" else "i_CLKI"] = clk_buf.i
        params = {f"p_{k}": v for k, v in pll.params.items()}
        if pll.family == "ice40":
            m.submodules.pll = Instance(
                pll.primitive, **params, p_PLLOUT_SELECT="GENCLK", i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=clk_out, o_LOCK=self.lock, **ports)
        else:
            # Attributes and fixed settings as ecppll writes them.
            m.submodules.pll = Instance(
                "EHXPLLL", **params,
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                a_FREQUENCY_PIN_CLKI=f"{float(pll.f_in) / 1e6:g}",
                a_FREQUENCY_PIN_CLKOP=f"{float(pll.f_out) / 1e6:g}",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
                i_CLKFB=clk_out, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0,
                i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
                o_CLKOP=clk_out, o_LOCK=self.lock, **ports)
        # No clock constraint on the PLL output here: nextpnr derives it from the input pin's
        # constraint and the PLL's dividers (a constraint on an Amaranth signal may name a
        # net that synthesis renamed, and nextpnr then ignores it).

        # Reset until LOCK has been high for LOCK_DELAY (counted on the PLL clock).
        m.domains.sync = sync = ClockDomain("sync")
        m.domains.pll_por = ClockDomain("pll_por", reset_less=True, local=True)
        m.d.comb += [sync.clk.eq(clk_out), ClockSignal("pll_por").eq(clk_out)]
        locked = Signal()
        m.submodules.lock_sync = FFSynchronizer(self.lock, locked, o_domain="pll_por")
        delay = max(int(LOCK_DELAY * float(pll.f_out)), 1)
        timer = Signal(range(delay + 1))
        ready = Signal()
        with m.If(~locked):
            m.d.pll_por += [timer.eq(0), ready.eq(0)]
        with m.Elif(timer == delay):
            m.d.pll_por += ready.eq(1)
        with m.Else():
            m.d.pll_por += timer.eq(timer + 1)
        m.d.comb += sync.rst.eq(~ready)


class _TimingMissed(Exception):
    def __init__(self, reached):
        self.reached = reached


def _divisor(brd, clk, baud, source):
    if not isinstance(baud, int) or isinstance(baud, bool) or baud <= 0:
        raise BnnflowError(f"--baud must be a positive UART rate, such as 115200, not {baud!r}")
    divisor = round(clk / baud)
    if divisor < 2 or abs(clk / divisor - baud) / baud > 0.02:
        raise BnnflowError(f"the {brd.name}'s {clk / 1e6:g} MHz {source} cannot make {baud} "
                           f"baud within 2 %; choose another --baud")
    return divisor


def _pll_text(pll):
    params = ", ".join(f"{k} {v}" for k, v in pll.params.items()
                       if k not in ("FEEDBACK_PATH", "FEEDBK_PATH", "CLKOP_FPHASE"))
    return f"{pll.primitive} ({params})"


def build(model, board, out_dir, folding=None, *, ii=None, pipeline=0, baud=115200,
          popcounts=True, clock="auto", progress=None, tool_timeout=None):
    """Build a bitstream of ``model``'s UART top for ``board`` into ``out_dir``.

    Writes ``out_dir/top.bin`` (iCE40) or ``out_dir/top.bit`` (ECP5), ``out_dir/build.json``
    (board, clock, PLL, baud, folding, protocol, Fmax, step time) and the tool logs.

    Parameters
    ----------
    folding : None, "auto", "fit", str or sequence
        As :func:`bnnflow.hw.folding.resolve_folding`; ``"fit"``: the fastest folding that
        places on the board's FPGA (:func:`bnnflow.boards.fit.fit_by_placement`).
    clock : "auto", "board" or float
        The clock source (see the module docstring); a float is a frequency in MHz for the
        PLL to approach from below.
    tool_timeout : float or None
        Seconds after which one place-and-route attempt (Yosys, nextpnr and the packer) is
        stopped and reported as a :class:`ToolError` (``None``: no limit).

    Returns
    -------
    dict
        The ``build.json`` contents; ``"bitstream"`` is its path, ``"folding"``, ``"ii"``,
        ``"lut4"``, ``"ff"``, ``"bram"``, ``"fmax_mhz"``, ``"clock_mhz"`` and
        ``"images_per_second"`` (clock / II) describe the design,
        ``"link_images_per_second"`` what its UART carries
        (:func:`~bnnflow.boards.uart_top.link_rate`), ``"attempts"`` each folding
        tried (``folding``, ``ii``, ``placed``), ``"clock"`` the clock (``source``,
        ``board_mhz``, ``requested_mhz``, ``achieved_mhz``, ``summary`` and the place-and-route
        ``attempts`` made for it), ``"pll"`` the PLL parameters (``None`` without one).

    Raises
    ------
    BnnflowError
        Unknown board, bad folding, a baud rate the clock cannot make, a clock frequency the
        PLL cannot make.
    DoesNotFit
        Weights or logic too large for the board's FPGA (with a folding that should fit), or
        a design too slow for the requested clock (with the frequency reached).
    ToolError
        A tool is missing or fails (tail of the log and where the full log is).
    """
    brd = get_board(board)
    tgt = get_target(brd.target)
    say = progress or (lambda msg: None)
    clock = parse_clock(clock)
    if isinstance(folding, str) and folding == "fit" and ii is not None:
        raise BnnflowError("--ii does not apply with --fold fit (it chooses the II)")
    board_hz = brd.make_platform().default_clk_frequency
    if clock == "board" or clock == "auto":
        first = None
        _divisor(brd, board_hz, baud, "clock")
    else:
        first = pll_for(tgt.family, board_hz, clock * 1e6, primitive=brd.pll)
        _divisor(brd, first.f_out_hz, baud, f"PLL clock (from --clock {clock:g})")
    device = f"{brd.name} ({tgt.name})"
    env = tool_env(["yosys", f"nextpnr-{tgt.family}",
                    "icepack" if tgt.family == "ice40" else "ecppack"])
    fit = isinstance(folding, str) and folding == "fit"
    if not fit:         # a bad folding is refused before any folder is made
        layer_folds, fold_text = checked_folding(model, folding, ii, tgt, device, pipeline)
    created = not Path(out_dir).exists()
    out_dir = make_output_dir(out_dir)
    job = dict(model=model, brd=brd, tgt=tgt, pipeline=pipeline, baud=baud,
               popcounts=popcounts, env=env, out_dir=out_dir, say=say, timeout=tool_timeout)
    works = []
    try:
        if fit:
            (info, work), _, fold_attempts = fit_by_placement(
                model, tgt.name, lambda layer_folds: _build_folding(
                    layer_folds, ",".join(str(f) for f in layer_folds), clock, first, board_hz,
                    works, job),
                pipeline=pipeline, progress=say, device=device)
        else:
            info, work = _build_folding(layer_folds, fold_text, clock, first, board_hz, works, job)
            fold_attempts = [{"folding": fold_text, "ii": info["ii"], "placed": True}]
        res = info["resources"]
        from .uart_top import link_rate

        info.update(lut4=res["lut4"], ff=res["ff"], bram=res["bram"],
                    images_per_second=round(info["clock_mhz"] * 1e6 / info["ii"]),
                    link_images_per_second=link_rate(info["protocol"], info["baud_actual"]),
                    attempts=fold_attempts)
        suffix = "bin" if tgt.family == "ice40" else "bit"
        os.replace(work / f"top.{suffix}", out_dir / f"top.{suffix}")
        for log in ("build.log", "top.rpt", "top.tim"):
            if (work / log).exists():
                os.replace(work / log, out_dir / log)
        write_text_atomic(out_dir / "build.json", json.dumps(info, indent=2) + "\n")
        return info
    except BaseException:
        for work in works:
            shutil.rmtree(work, ignore_errors=True)
        if created and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()     # nothing written: leave no empty folder behind
        raise
    finally:
        for work in works:
            shutil.rmtree(work, ignore_errors=True)


def _build_folding(layer_folds, fold_text, clock, first, board_hz, works, job):
    """Place and route one folding with the clock logic of ``--clock``: ``(info, work)``, the
    ``info`` of the build kept and the temporary folder holding its bitstream and logs."""
    brd = job["brd"]
    attempts = []
    job = dict(job, layer_folds=layer_folds, fold_text=fold_text)
    if clock != "auto":
        try:
            info, work = _attempt(pll=first, attempts=attempts, works=works, **job)
        except _TimingMissed as e:
            what = (f"the {brd.name}'s clock is {board_hz / 1e6:g} MHz" if first is None
                    else f"the PLL clock is {first.f_out_hz / 1e6:g} MHz")
            raise DoesNotFit(
                f"the design reaches {e.reached:.1f} MHz, {what}: "
                + ("use --clock auto or a lower --clock, " if first is not None else "")
                + "add popcount pipeline stages (--pipeline 1 or 2) or fold the widest "
                  "layers (--fold auto --ii CYCLES)") from None
        source = "board" if first is None else "pll"
        summary = (f"clock: the board's {board_hz / 1e6:g} MHz oscillator (no PLL)"
                   if first is None else
                   f"clock: {first.f_out_hz / 1e6:g} MHz from a {_pll_text(first)} on the "
                   f"{board_hz / 1e6:g} MHz board clock (asked for at most {clock:g} MHz)")
    else:
        info, work, source, summary = _auto(board_hz, attempts, works, job)
    pll = info["pll"]
    info["clock"] = {
        "source": source, "requested": clock,
        "board_mhz": board_hz / 1e6,
        "requested_mhz": pll["requested_mhz"] if pll else None,
        "achieved_mhz": info["clock_mhz"], "timing_met": True,
        "summary": summary, "attempts": attempts,
    }
    return info, work


def _auto(board_hz, attempts, works, job):
    """``--clock auto``: board clock first, then a PLL if the Fmax allows (see module doc)."""
    brd, tgt, say = job["brd"], job["tgt"], job["say"]
    board_mhz = board_hz / 1e6
    try:
        info, work = _attempt(pll=None, attempts=attempts, works=works, **job)
    except _TimingMissed as e:
        raise DoesNotFit(
            f"the design reaches {e.reached:.1f} MHz, the {brd.name}'s clock is {board_mhz:g} "
            f"MHz: add popcount pipeline stages (--pipeline 1 or 2) or fold the widest layers "
            f"(--fold auto --ii CYCLES)") from None
    fmax = info["fmax_mhz"]
    board = (info, work, "board")
    if fmax is None or fmax < PLL_MARGIN * board_mhz:
        return (*board, f"clock: the board's {board_mhz:g} MHz oscillator (Fmax {fmax} MHz is "
                        f"under {PLL_MARGIN:g}x the board clock: no PLL)")
    target = PLL_TARGET * fmax
    for step in range(1 + PLL_STEPS):
        try:
            pll = pll_for(tgt.family, board_hz, target * 1e6, primitive=brd.pll)
            _divisor(brd, pll.f_out_hz, job["baud"], "PLL clock")
        except BnnflowError as e:
            return (*board, f"clock: the board's {board_mhz:g} MHz oscillator (no PLL: {e})")
        if pll.f_out_hz <= board_hz:
            return (*board, f"clock: the board's {board_mhz:g} MHz oscillator (the PLL's best "
                            f"under {target:.1f} MHz is {pll.f_out_hz / 1e6:g} MHz, no faster)")
        if step == 0:
            say(f"Fmax {fmax} MHz on the {board_mhz:g} MHz board clock: rebuilding with a "
                f"{pll.f_out_hz / 1e6:g} MHz PLL clock")
        else:
            say(f"the {attempts[-1]['clock_mhz']:g} MHz PLL clock missed timing (reached "
                f"{attempts[-1].get('fmax_mhz')} MHz): rebuilding with "
                f"{pll.f_out_hz / 1e6:g} MHz (step {step} of at most {PLL_STEPS})")
        try:
            info, work = _attempt(pll=pll, attempts=attempts, works=works, **job)
        except ToolError as e:
            # The board-clock build stands; keep the failed log beside it.
            failed = job["out_dir"] / "build-pll-failed.log"
            if (job["out_dir"] / "build.log").exists():
                os.replace(job["out_dir"] / "build.log", failed)
            failure = first_line(e)
            return (*board, f"clock: the board's {board_mhz:g} MHz oscillator (the "
                            f"{pll.f_out_hz / 1e6:g} MHz PLL build failed: {failure}; "
                            f"log in {failed})")
        except _TimingMissed as e:
            if step < PLL_STEPS:
                target = min(PLL_TARGET * e.reached, pll.f_out_hz / 1e6 - 1e-6)
                continue
            missed = [f"{a['clock_mhz']:g}" for a in attempts if a["source"] == "pll"]
            return (*board, f"clock: the board's {board_mhz:g} MHz oscillator (PLL clocks "
                            f"of {', '.join(missed[:-1])} and {missed[-1]} MHz missed timing: "
                            f"fell back to the board clock)")
        steps = {0: "", 1: ", stepped down once after a missed timing",
                 2: ", stepped down twice after missed timings"}
        return (info, work, "pll",
                f"clock: {pll.f_out_hz / 1e6:g} MHz from a {_pll_text(pll)} on the "
                f"{board_mhz:g} MHz board clock (Fmax {info['fmax_mhz']} MHz; "
                f"{PLL_TARGET:g} x the board-clock Fmax {fmax} MHz asked for"
                + steps.get(step, f", stepped down {step} times after missed timings") + ")")
    raise AssertionError("unreachable")


def _attempt(*, model, brd, tgt, layer_folds, fold_text, pipeline, baud, popcounts, env, out_dir,
             say, pll, attempts, works, timeout=None):
    """One build in a fresh temporary directory: ``(info, work_dir)``.

    Raises :class:`_TimingMissed` when nextpnr misses the clock, :class:`DoesNotFit` when the
    design does not fit, :class:`ToolError` otherwise.
    """
    from ..model.artifact import model_checksum
    from .estimate import ROM_REGISTER
    from .uart_top import UartTop

    platform = brd.make_platform()
    clk = platform.default_clk_frequency if pll is None else pll.f_out_hz
    divisor = _divisor(brd, clk, baud, "clock" if pll is None else "PLL clock")
    try:
        core = UartTop(model, layer_folds, pipeline, divisor=divisor, popcounts=popcounts,
                       rom_register=ROM_REGISTER[tgt.family])
    except ValueError as e:
        raise BnnflowError(str(e)) from None
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=out_dir))
    works.append(work)
    clock_text = (f"board clock {clk / 1e6:g} MHz" if pll is None
                  else f"PLL clock {clk / 1e6:g} MHz")
    say(f"prepare the build plan for {brd.name} ({fold_text}, {clock_text}, divisor {divisor})")
    t = time.perf_counter()
    plan = platform.prepare(BoardTop(core, brd.leds, pll), name="top",
                            script_after_synth="tee -q -o stat.json stat -json",
                            nextpnr_opts="--report pnr.json --seed 1")
    plan.extract(work)
    steps = {"prepare": round(time.perf_counter() - t, 3)}
    say("yosys, nextpnr and the bitstream packer (Amaranth's build script)")
    attempt = {"source": "board" if pll is None else "pll", "clock_mhz": clk / 1e6}
    attempts.append(attempt)
    try:
        steps["tools"] = round(run_step("build", ["sh", f"{plan.script}.sh"], cwd=work,
                                        log=work / "build.log", keep_log_dir=out_dir,
                                        env=env, timeout=timeout), 3)
    except ToolError:
        _explain_fit(work, model, layer_folds, fold_text, tgt, brd)
        timing = timing_failure(_failure_log(work))
        if timing:
            attempt.update(fmax_mhz=timing.reached_mhz, timing_met=False)
            raise _TimingMissed(timing.reached_mhz) from None
        raise
    counts = read_stat(work / "stat.json", tgt.family)
    fmax = read_pnr_report(work / "pnr.json").fmax_mhz
    attempt.update(fmax_mhz=fmax, timing_met=True, step_seconds=steps)
    suffix = "bin" if tgt.family == "ice40" else "bit"
    manifest, _ = model.manifest()
    info = {
        "board": brd.name, "target": tgt.name, "clock_mhz": round(clk / 1e6, 6),
        "pll": pll.as_dict() if pll is not None else None,
        "baud": baud, "baud_actual": round(clk / divisor, 1),
        "fmax_mhz": fmax,
        "folding": fold_text, "pipeline": pipeline, "ii": core.bnn.ii,
        "rom_register": ROM_REGISTER[tgt.family],
        "latency": core.bnn.latency, "protocol": core.protocol(),
        "resources": counts.as_dict(),
        "model_checksum": model_checksum(manifest), "step_seconds": steps,
        "bitstream": str(out_dir / f"top.{suffix}"), "port_hint": brd.port_hint,
    }
    return info, work


def _failure_log(work):
    """The ends of nextpnr's timing report and of the build log of a failed build."""
    return log_tail(work / "top.tim", 400) + log_tail(work / "build.log", 400)


def _explain_fit(work, model, layer_folds, fold_text, tgt, brd):
    """Raise :class:`NotPlaced` when the failed build's cell counts exceed the device or
    nextpnr found no legal placement."""
    stat_path = work / "stat.json"
    if not stat_path.exists():
        return
    counts = read_stat(stat_path, tgt.family)
    log = _failure_log(work)
    if counts.logic > tgt.lut4 or counts.bram > tgt.bram or unplaceable(log):
        need = max(measured_need(counts), placed_logic(log, tgt.family) or 0)
        raise NotPlaced(
            f"the design needs {counts.logic} LUT4, {counts.ff} FF (about {need} logic cells) "
            f"and {counts.bram} block RAMs (folding {fold_text}); the {brd.name} "
            f"({tgt.name}) has {tgt.lut4} logic cells and {tgt.bram} block RAMs; "
            f"{_fit_hint(model, layer_folds, need, tgt.lut4, tgt.bram, tgt.family)}",
            need) from None
