"""Out-of-context synthesis of a network with Yosys and nextpnr, and its resource report.

:func:`synthesize` wraps :class:`~bnnflow.hw.top.BnnTop` in the serial I/O fixture of
:mod:`bnnflow.boards.wrapper`, writes it as RTLIL, then runs

1. ``yosys``: ``read_rtlil; synth_<family> -top bnnflow_synth -json netlist.json;
   stat -json`` (cell counts: LUT4, flip-flops, carry cells, block RAM, SPRAM),
2. a fit check of those counts against the target
   (:class:`~bnnflow.boards.fit.DoesNotFit` with a folding that would fit, before spending
   time in place and route),
3. ``nextpnr-<family> --timing-allow-fail --report pnr.json`` (utilization and Fmax; a missed
   clock constraint is reported, not an error).

Report keys: ``target``, ``device_args``, ``lut4``, ``ff``, ``carry``, ``bram``, ``spram``,
``cells`` (every cell type), ``utilization`` (percent: ``logic``, ``ff``, ``bram``, ``io``),
``capacity``, ``fmax_mhz``, ``freq_constraint_mhz``, ``timing_met``, ``ii``,
``images_per_second`` (``fmax / ii``), ``latency``, ``latency_us``, ``folding``, ``pipeline``,
``model_checksum``, ``wrapper``, ``step_seconds`` (``generate``, ``yosys``, ``nextpnr``),
``tools``.

The estimates behind the fit checks are in :mod:`bnnflow.boards.estimate`, the choice
of a folding in :mod:`bnnflow.boards.fit`, the readers of the tools' reports and logs in
:mod:`bnnflow.tool_reports`; this module runs the tools and turns what they reported into
the report.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import BnnflowError
from ..fileio import log_tail, write_text_atomic
from ..tool_reports import PNR_CELLS, Usage, placed_logic, read_pnr_report, read_stat, unplaceable
from . import estimate
from .estimate import ROM_REGISTER, measured_need, routable_brams
from .fit import _SURE_OVERFLOW, NotPlaced, _fit_hint, checked_folding, fit_by_placement
from .targets import get_target
from .tools import find_tool, run_step

__all__ = ["synthesize", "timing_line", "router_args", "clock_pin_constraint", "CLOCK_LPF",
           "ECP5_ROUTER2_ABOVE", "SYNTH_TOP", "PLACE_ATTEMPTS"]

SYNTH_TOP = "bnnflow_synth"

#: Placer seeds tried (``seed``, ``seed + 1``, ...) before a design that nextpnr cannot place
#: is reported as not fitting.
PLACE_ATTEMPTS = 3

def timing_line(report):
    """One line on the clock: met, or missed and by how much."""
    fmax, want = report["fmax_mhz"], report["freq_constraint_mhz"]
    if fmax is None:
        return "timing: no clock found in the nextpnr report"
    if report["timing_met"]:
        return f"timing: Fmax {fmax:.1f} MHz meets the {want:g} MHz constraint"
    return (f"timing: Fmax {fmax:.1f} MHz misses the {want:g} MHz constraint "
            f"(placed anyway with --timing-allow-fail; figures below use {fmax:.1f} MHz)")


def _make_build_dir(out_dir):
    """``(build dir, whether out_dir was created here)``."""
    if out_dir is None:
        return Path(tempfile.mkdtemp(prefix="bnnflow-synth-")), False
    out_dir = Path(out_dir)
    created = not os.path.lexists(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".synth-", dir=out_dir)), created


def _drop_build_dir(build, out_dir, created):
    """Remove ``build``, and ``out_dir`` too when it was created here and holds nothing (a
    failure that kept no log leaves no empty --out)."""
    shutil.rmtree(build, ignore_errors=True)
    if created and not any(Path(out_dir).iterdir()):
        Path(out_dir).rmdir()


#: ECP5 designs above this many logic cells (LUT4 + 2 per CCU2C, Yosys' count) are routed with
#: nextpnr's router2: router1 (the default) had 60,000 of 99,000 arcs left after 13 minutes on
#: the sfc network at II 64 (about 59,000 cells) and stalled on the fully parallel tfc (about
#: 41,000), where router2 routed the sfc in 6 minutes; on small designs router1 gives the
#: better Fmax (default tfc at II 256, about 3,500 cells: 133 against 107 MHz).
ECP5_ROUTER2_ABOVE = 20_000

#: Constraint file that locks ``clk`` to :attr:`Target.clock_pin` (kept in ``out_dir``).
CLOCK_LPF = "clock.lpf"


def clock_pin_constraint(tgt):
    """``(text, nextpnr options)`` locking the ``clk`` port to ``tgt.clock_pin``, or ``None``.

    ECP5 only (an LPF file, :data:`CLOCK_LPF`; the other pins stay unconstrained).
    """
    if tgt.clock_pin is None:
        return None
    return (f'LOCATE COMP "clk" SITE "{tgt.clock_pin}";\n',
            ["--lpf", CLOCK_LPF, "--lpf-allow-unconstrained"])


def router_args(family, logic):
    """Extra nextpnr options for a design of ``logic`` cells (see :data:`ECP5_ROUTER2_ABOVE`)."""
    if family == "ecp5" and logic > ECP5_ROUTER2_ABOVE:
        return ["--router", "router2"]
    return []


def synthesize(model, target="ice40-up5k", folding=None, *, ii=None, pipeline=0, out_dir=None,
               freq_mhz=None, seed=1, progress=None, pnr_timeout=None):
    """Synthesize ``model`` out of context for ``target``; return the report dict.

    Parameters
    ----------
    model : BnnModel
    target : str
        One of :data:`bnnflow.boards.targets.TARGETS`.
    folding : None, "auto", "fit", str or sequence
        As :func:`bnnflow.hw.folding.resolve_folding` (with ``ii`` for ``"auto"``); ``"fit"``:
        the fastest folding that places (:func:`bnnflow.boards.fit.fit_by_placement`), the
        report's ``attempts`` listing each one tried.
    ii, pipeline : int or None, int
        Target II for ``folding="auto"``; popcount pipeline stages.
    out_dir : path or None
        Where ``report.json``, the tool logs (``yosys.log``, ``nextpnr.log``) and the nextpnr
        report (``nextpnr-report.json``) go. Tool steps run in a temporary directory; the
        files move into ``out_dir`` only when every step succeeded. ``None``: nothing is kept.
    freq_mhz : float or None
        Clock constraint for nextpnr (default: the target's).
    seed : int
        nextpnr placer seed; a failed placement is retried with the next seeds
        (:func:`_place`), and the report says which one placed (``nextpnr_seed``).
    progress : callable or None
        Called with a one-line message before each step.
    pnr_timeout : float or None
        Seconds after which a nextpnr run is stopped (a :class:`ToolError` naming the limit);
        ``None``: no limit. nextpnr's router can stall on a congested design for a long time.

    Raises
    ------
    BnnflowError
        Unknown target, bad folding (``ValueError`` from the folding is turned into this).
    DoesNotFit
        More LUT4 or block RAM than the target has, or no legal placement
        (:class:`~bnnflow.boards.fit.NotPlaced`; says by how much, and what should fit).
    ToolError
        A tool is missing or fails.
    """
    from ..hw.top import BnnTop
    from .wrapper import WRAPPER_NOTE

    tgt = get_target(target)
    say = progress or (lambda msg: None)
    if isinstance(folding, str) and folding == "fit":
        if ii is not None:
            raise BnnflowError("--ii does not apply with --fold fit (it chooses the II)")
        return _synthesize_fit(model, target, pipeline=pipeline, out_dir=out_dir,
                               freq_mhz=freq_mhz, seed=seed, progress=progress,
                               pnr_timeout=pnr_timeout)
    layer_folds, fold_text = checked_folding(model, folding, ii, tgt, pipeline=pipeline)
    yosys = find_tool("yosys")
    nextpnr = find_tool(f"nextpnr-{tgt.family}")

    try:
        bnn = BnnTop(model, layer_folds, pipeline, rom_register=ROM_REGISTER[tgt.family])
    except ValueError as e:
        raise BnnflowError(str(e)) from None

    steps = {}
    build, created = _make_build_dir(out_dir)
    # Logs of a failed step outlive the temporary build directory.
    keep = out_dir if out_dir is not None else Path(tempfile.gettempdir()) / "bnnflow-logs"
    try:
        say(f"generate RTLIL ({fold_text}, II {bnn.ii})")
        steps["generate"] = _write_rtlil(bnn, build)

        say(f"yosys synth_{tgt.family}")
        steps["yosys"], counts = _run_yosys(yosys, tgt.family, build, keep)
        logic, need = counts.logic, measured_need(counts)
        _check_counts(counts, tgt, fold_text, say,
                      _fit_hint(model, layer_folds, need, tgt.lut4, tgt.bram, tgt.family, pipeline))
        freq = float(freq_mhz if freq_mhz is not None else tgt.freq_mhz)
        device_args, clock = _device_args(tgt, logic, build)
        say(f"nextpnr-{tgt.family} {' '.join(device_args)} (constraint {freq:g} MHz)")

        def not_placed(placed, last):
            placed = placed or need
            hint = _fit_hint(model, layer_folds, placed, tgt.lut4, tgt.bram, tgt.family, pipeline)
            return NotPlaced(f"nextpnr could not place the design on the {tgt.name} ({placed} "
                             f"logic cells of {tgt.lut4}: {logic} LUT4, {counts.ff} FF; placer "
                             f"seeds {seed}-{last}); {hint}", placed)

        try_seed, steps["nextpnr"] = _place(
            [*nextpnr, *device_args, "--json", "netlist.json", "--report", "pnr.json",
             "--timing-allow-fail", "--freq", f"{freq:g}"], build, keep, seed, pnr_timeout,
            say, not_placed, tgt.family)
        pnr = read_pnr_report(build / "pnr.json")

        report = _report(tgt, pnr, counts, bnn, fold_text, pipeline, freq, steps, yosys,
                         nextpnr, WRAPPER_NOTE)
        report["nextpnr_seed"] = try_seed
        report["device_args"] = device_args
        if out_dir is not None:
            _keep_outputs(build, Path(out_dir), report, clock is not None)
        return report
    finally:
        _drop_build_dir(build, out_dir, created)


def _device_args(tgt, logic, build):
    """nextpnr's device options for ``tgt`` (router by size, the clock pin on ECP5, whose
    constraint file is written into ``build``): ``(args, clock pin or None)``."""
    args = [*tgt.nextpnr_args, *router_args(tgt.family, logic)]
    clock = clock_pin_constraint(tgt)
    if clock is not None:
        (build / CLOCK_LPF).write_text(clock[0], encoding="utf-8")
        args += clock[1]
    return args, clock


def _keep_outputs(build, out_dir, report, clock_pin):
    """Move the logs and tool reports of a successful run into ``out_dir``, then write
    ``report.json`` there."""
    for src, dst in (("yosys.log", "yosys.log"), ("nextpnr.log", "nextpnr.log"),
                     ("pnr.json", "nextpnr-report.json"), ("stat.json", "yosys-stat.json"),
                     *([(CLOCK_LPF, CLOCK_LPF)] if clock_pin else [])):
        os.replace(build / src, out_dir / dst)
    write_text_atomic(out_dir / "report.json", json.dumps(report, indent=2) + "\n")


def _synthesize_fit(model, target, **options):
    """``synthesize(..., folding="fit")``: the report of the fastest folding that places, with
    every folding tried under ``attempts``."""
    progress = options["progress"]
    report, _, attempts = fit_by_placement(
        model, target, lambda layer_folds: synthesize(model, target, layer_folds, **options),
        pipeline=options["pipeline"], progress=progress or (lambda msg: None))
    report["attempts"] = attempts
    if options["out_dir"] is not None:
        write_text_atomic(Path(options["out_dir"]) / "report.json",
                          json.dumps(report, indent=2) + "\n")
    return report


def _write_rtlil(bnn, build):
    """``build/design.il``: ``bnn`` inside the synthesis wrapper; returns the seconds taken."""
    import time

    from amaranth.back import rtlil

    from .wrapper import SynthWrapper

    t = time.perf_counter()
    text = rtlil.convert(SynthWrapper(bnn), name=SYNTH_TOP)
    (build / "design.il").write_text(text, encoding="utf-8")
    return round(time.perf_counter() - t, 3)


def _run_yosys(yosys, family, build, keep):
    """Yosys ``synth_<family>`` on ``build/design.il``: ``(seconds, CellCounts)``."""
    (build / "synth.ys").write_text(
        "read_rtlil design.il\n"
        f"synth_{family} -top {SYNTH_TOP} -json netlist.json\n"
        "tee -q -o stat.json stat -json\n", encoding="utf-8")
    seconds = run_step("yosys", [*yosys, "synth.ys"], cwd=build, log=build / "yosys.log",
                       keep_log_dir=keep)
    return round(seconds, 3), read_stat(build / "stat.json", family)


def _place(command, build, keep, seed, timeout, say, not_placed, family):
    """nextpnr ``command`` with seed ``seed``, then the next :data:`PLACE_ATTEMPTS` - 1 seeds
    while it finds no legal placement: ``(seed that placed, seconds)``.

    A design near the placer's limit places with some seeds and not with others (the default
    digits tfc at II 256 on the UP5K: seed 1 failed, seeds 2 and 3 placed), so a failed
    placement is retried before the design is declared too big: ``not_placed(logic cells the
    placer wanted or None, last seed)`` is raised then.
    """
    for attempt in range(PLACE_ATTEMPTS):
        try_seed = seed + attempt
        try:
            seconds = run_step("nextpnr", [*command, "--seed", str(try_seed)], cwd=build,
                               log=build / "nextpnr.log", keep_log_dir=keep, timeout=timeout)
            return try_seed, round(seconds, 3)
        except BnnflowError:
            tail = log_tail(build / "nextpnr.log", 200)
            if not unplaceable(tail):
                raise
            if attempt + 1 < PLACE_ATTEMPTS:
                say(f"nextpnr could not place the design with seed {try_seed}; retrying with "
                    f"seed {try_seed + 1}")
                continue
            raise not_placed(placed_logic(tail, family), try_seed) from None
    raise AssertionError("unreachable")


def _check_counts(counts, tgt, fold_text, say, hint):
    """Raise :class:`NotPlaced` when Yosys' ``counts`` are more than ``tgt`` holds, before
    nextpnr spends its time on them; warn through ``say`` when an ECP5 design reads more block
    RAMs per cycle than were seen to route."""
    logic, need = counts.logic, measured_need(counts)
    if logic > tgt.lut4:
        raise NotPlaced(
            f"the design needs {logic} LUT4 (folding {fold_text}), the {tgt.name} has "
            f"{tgt.lut4}: {logic - tgt.lut4} too many ({logic / tgt.lut4:.0%} of the "
            f"device); {hint}", need)
    if need > _SURE_OVERFLOW * tgt.lut4:
        raise NotPlaced(
            f"the design needs about {need} logic cells ({logic} LUT4 and {counts.ff} "
            f"flip-flops, most of which cannot share a cell with a LUT; folding "
            f"{fold_text}), the {tgt.name} has {tgt.lut4} ({need / tgt.lut4:.0%} of the "
            f"device); {hint}", need)
    if counts.bram > tgt.bram:
        raise NotPlaced(
            f"the design needs {counts.bram} block RAMs (folding {fold_text}), the "
            f"{tgt.name} has {tgt.bram}: {counts.bram - tgt.bram} too many; {hint}", need)
    if counts.bram > routable_brams(tgt.family, tgt.bram):
        # The limit is read from its module when the warning is made, so that it is always
        # the one routable_brams applied (a test lowers it there).
        say(f"warning: {counts.bram} block RAMs are read every cycle; ECP5 designs with more "
            f"than {estimate.ECP5_ROUTABLE_BRAMS} failed to route in the measurements of "
            f"boards/README.md (consider --pnr-timeout); {hint}")


def _percent(usage):
    return round(100.0 * usage.used / usage.available, 2) if usage.available else None


def _report(tgt, pnr, counts, bnn, fold_text, pipeline, freq, steps, yosys, nextpnr, wrapper):
    from ..model.artifact import model_checksum

    fmax = pnr.fmax_mhz
    logic, ff = pnr.usage(tgt.family, "logic"), pnr.usage(tgt.family, "ff")
    bram, io = pnr.usage(tgt.family, "bram"), pnr.usage(tgt.family, "io")
    if tgt.family == "ice40":
        # nextpnr has no flip-flop figure on iCE40 (ICESTORM_LC counts whole logic cells):
        # the flip-flops used are Yosys' count.
        ff = Usage(counts.ff, ff.available)
    manifest, _ = bnn.model.manifest()
    return {
        "target": tgt.name,
        "family": tgt.family,
        "device_args": list(tgt.nextpnr_args),
        "lut4": counts.lut4,
        "ff": counts.ff,
        "carry": counts.carry,
        "lutram": counts.lutram,
        "logic": counts.logic,
        "bram": counts.bram,
        "spram": counts.spram,
        "logic_cells": logic.used,
        "cells": counts.by_type,
        "capacity": {"logic_cells": logic.available or tgt.lut4,
                     "bram": bram.available or tgt.bram, "spram": tgt.spram, "io": io.available},
        "utilization": {"logic": _percent(logic), "ff": _percent(ff), "bram": _percent(bram),
                        "io": _percent(io)},
        "fmax_mhz": fmax,
        "freq_constraint_mhz": freq,
        "timing_met": fmax is not None and fmax >= freq,
        "ii": bnn.ii,
        "images_per_second": round(fmax * 1e6 / bnn.ii, 1) if fmax else None,
        "latency": bnn.latency,
        "latency_us": round(bnn.latency / fmax, 4) if fmax else None,
        "folding": fold_text,
        "pipeline": pipeline,
        "model_checksum": model_checksum(manifest),
        "wrapper": wrapper,
        "step_seconds": steps,
        "tools": {"yosys": " ".join(yosys), "nextpnr": " ".join(nextpnr)},
        "logic_note": ("lut4 counts LUT4 cells from Yosys; logic is what they take on the "
                       "device before placement (ECP5: LUT4 + 3.2 CCU2C + 6 TRELLIS_DPR16X4, "
                       "measured against nextpnr's packing); logic_cells is nextpnr's count of "
                       f"placed {PNR_CELLS[tgt.family]['logic']}"),
    }
