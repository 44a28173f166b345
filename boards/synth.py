"""Out-of-context synthesis of a network with Yosys and nextpnr, and its resource report.

:func:`synthesize` wraps :class:`~bnnflow.hw.top.BnnTop` in the serial I/O fixture of
:mod:`bnnflow.boards.wrapper`, writes it as RTLIL, then runs

1. ``yosys``: ``read_rtlil; synth_<family> -top bnnflow_synth -json netlist.json;
   stat -json`` (cell counts: LUT4, flip-flops, carry cells, block RAM, SPRAM),
2. a fit check of those counts against the target (:class:`DoesNotFit` with a folding that
   would fit, before spending time in place and route),
3. ``nextpnr-<family> --timing-allow-fail --report pnr.json`` (utilization and Fmax; a missed
   clock constraint is reported, not an error).

Report keys: ``target``, ``device_args``, ``lut4``, ``ff``, ``carry``, ``bram``, ``spram``,
``cells`` (every cell type), ``utilization`` (percent: ``logic``, ``ff``, ``bram``, ``io``),
``capacity``, ``fmax_mhz``, ``freq_constraint_mhz``, ``timing_met``, ``ii``,
``images_per_second`` (``fmax / ii``), ``latency``, ``latency_us``, ``folding``, ``pipeline``,
``model_checksum``, ``wrapper``, ``step_seconds`` (``generate``, ``yosys``, ``nextpnr``),
``tools``.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import BnnflowError
from ..fileio import write_text_atomic
from .targets import get_target, rom_blocks
from .tools import find_tool, log_tail, run_step

__all__ = ["synthesize", "DoesNotFit", "estimate_brams", "estimate_rom_luts",
           "rom_does_not_fit", "suggest_ii", "fit_folding",
           "cell_counts", "SYNTH_TOP", "timing_line", "LUT4_PER_XNOR_BIT"]

SYNTH_TOP = "bnnflow_synth"

# Cell types counted in each report field, per family.
_CELLS = {
    "ice40": {"lut4": ("SB_LUT4",), "carry": ("SB_CARRY",), "bram": ("SB_RAM40_4K",),
              "spram": ("SB_SPRAM256KA",), "ff_prefix": "SB_DFF"},
    "ecp5": {"lut4": ("LUT4",), "carry": ("CCU2C",), "bram": ("DP16KD",), "spram": (),
             "ff_prefix": "TRELLIS_FF"},
}
_LOGIC_CELL = {"ice40": "ICESTORM_LC", "ecp5": "TRELLIS_COMB"}
_FF_CELL = {"ice40": "ICESTORM_LC", "ecp5": "TRELLIS_FF"}
_BRAM_CELL = {"ice40": "ICESTORM_RAM", "ecp5": "DP16KD"}
_IO_CELL = {"ice40": "SB_IO", "ecp5": "TRELLIS_IO"}


#: LUT4 per XNOR bit computed per cycle, from a first prototype's fully parallel 64x64 layer
#: (3311 LUT4 on iCE40, 7928 on ECP5, for 4096 bits); used only to suggest a folding before
#: any synthesis result exists.
LUT4_PER_XNOR_BIT = {"ice40": 3311 / 4096, "ecp5": 7928 / 4096}


class DoesNotFit(BnnflowError):
    """The design needs more logic or block RAM than the target has."""


def cell_counts(family, by_type):
    """Report fields ``lut4, ff, carry, bram, spram`` from Yosys' cell counts by type."""
    spec = _CELLS[family]
    counts = {key: sum(by_type.get(t, 0) for t in spec[key])
              for key in ("lut4", "carry", "bram", "spram")}
    counts["ff"] = sum(n for t, n in by_type.items() if t.startswith(spec["ff_prefix"]))
    return counts


def estimate_brams(model, folding, family):
    """Block RAMs the weight ROMs of the folded layers (cycles > 1) need at best."""
    from ..hw.folding import layer_cycles

    total = 0
    for layer, fold in zip(model.layers, folding, strict=True):
        cycles = layer_cycles(layer.in_width, layer.out_width, fold)
        if cycles > 1:
            total += rom_blocks(family, fold.pe * fold.simd, cycles)
    return total


def estimate_rom_luts(model, folding):
    """LUT4 the weight ROMs would take in logic instead: ``width * ceil(depth / 16)``."""
    from ..hw.folding import layer_cycles

    total = 0
    for layer, fold in zip(model.layers, folding, strict=True):
        cycles = layer_cycles(layer.in_width, layer.out_width, fold)
        if cycles > 1:
            total += fold.pe * fold.simd * -(-cycles // 16)
    return total


def rom_does_not_fit(model, folding, tgt):
    """True when the ROMs fit neither the block RAMs nor (by estimate) the LUTs."""
    return (estimate_brams(model, folding, tgt.family) > tgt.bram
            and estimate_rom_luts(model, folding) > tgt.lut4)


def _xnor_bits(folding):
    return sum(f.pe * f.simd for f in folding)


def suggest_ii(model, folding, needed=None, available=None, brams_available=None, family=None,
               margin=0.8):
    """A target II (a power of two) whose ``auto`` folding should fit, or None.

    Logic is assumed to scale with the XNOR bits computed per cycle (``sum PE*SIMD``): a
    design needing ``needed`` LUT4 with the current ``folding`` is predicted to need
    ``needed * bits(II) / bits(current)``, which must be at most ``margin * available``. When
    ``brams_available`` is given, the ROMs of the folded layers must also fit the block RAMs
    (:func:`estimate_brams`). ``needed=None`` checks block RAM only. The answer is the
    smallest power of two that passes (block RAM use is not monotonic in II: very narrow ROMs
    waste block RAM width).
    """
    from ..hw.folding import auto_fold

    current = _xnor_bits(folding)
    longest = max(layer.in_width * layer.out_width for layer in model.layers)

    def fits(ii):
        fold, _ = auto_fold(model, ii)
        if needed is not None and needed * _xnor_bits(fold) / current > margin * available:
            return False
        return brams_available is None or estimate_brams(model, fold, family) <= brams_available

    ii = 1
    while True:
        if fits(ii):
            return ii
        if ii >= longest:
            return None
        ii *= 2


def _fit_hint(model, folding, needed, available, bram_avail, family):
    ii = suggest_ii(model, folding, needed, available, bram_avail, family)
    if ii is None:
        return "no folding of this network is expected to fit; choose a larger target"
    return f"try --fold auto --ii {ii} (estimated to fit)"


def _rom_hint(model, folding, tgt):
    """Fit hint when only the ROM estimate exists: logic from :data:`LUT4_PER_XNOR_BIT`."""
    needed = LUT4_PER_XNOR_BIT[tgt.family] * _xnor_bits(folding)
    return _fit_hint(model, folding, needed, tgt.lut4, tgt.bram, tgt.family)


def fit_folding(model, target):
    """A folding expected to fit ``target``: ``(folding, ii)``.

    Fully parallel when the estimate (:data:`LUT4_PER_XNOR_BIT`) fits 80 % of the device,
    otherwise ``auto`` at the smallest power-of-two II predicted to fit (see
    :func:`suggest_ii`). An estimate, not a guarantee: :func:`synthesize` checks the real
    counts. Raises :class:`DoesNotFit` when no folding is expected to fit.
    """
    from ..hw.folding import auto_fold, fully_parallel

    tgt = get_target(target)
    full = fully_parallel(model)
    ii = suggest_ii(model, full, LUT4_PER_XNOR_BIT[tgt.family] * _xnor_bits(full), tgt.lut4,
                    tgt.bram, tgt.family)
    if ii is None:
        raise DoesNotFit(f"no folding of this network is expected to fit the {tgt.name}")
    return auto_fold(model, ii)


def checked_folding(model, folding, ii, tgt, device=None):
    """Resolve a folding for ``tgt`` and check that its weight ROMs can fit: ``(fold, text)``.

    Raises
    ------
    BnnflowError
        An impossible folding (the message of :func:`bnnflow.hw.folding.resolve_folding`).
    DoesNotFit
        Weights that fit neither the block RAMs nor, by estimate, the logic of ``device``
        (default: the target's name), with a folding that would fit.
    """
    from ..hw.folding import resolve_folding

    try:
        fold = resolve_folding(model, folding, ii)
    except ValueError as e:
        raise BnnflowError(str(e)) from None
    fold_text = ",".join(str(f) for f in fold)
    if rom_does_not_fit(model, fold, tgt):
        rom_need = estimate_brams(model, fold, tgt.family)
        raise DoesNotFit(
            f"the weight ROMs of folding {fold_text} need at least {rom_need} block RAMs, the "
            f"{device or tgt.name} has {tgt.bram} ({rom_need - tgt.bram} too many), and about "
            f"{estimate_rom_luts(model, fold)} LUT4 in logic; {_rom_hint(model, fold, tgt)}")
    return fold, fold_text


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
    if out_dir is None:
        return Path(tempfile.mkdtemp(prefix="bnnflow-synth-"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".synth-", dir=out_dir))


def synthesize(model, target="ice40-up5k", folding=None, *, ii=None, pipeline=0, out_dir=None,
               freq_mhz=None, seed=1, progress=None):
    """Synthesize ``model`` out of context for ``target``; return the report dict.

    Parameters
    ----------
    model : BnnModel
    target : str
        One of :data:`bnnflow.boards.targets.TARGETS`.
    folding : None, "auto", str or sequence
        As :func:`bnnflow.hw.folding.resolve_folding` (with ``ii`` for ``"auto"``).
    ii : int or None
        Target II for ``folding="auto"``.
    pipeline : int
        Popcount pipeline stages.
    out_dir : path or None
        Where ``report.json``, the tool logs (``yosys.log``, ``nextpnr.log``) and the nextpnr
        report (``nextpnr-report.json``) go. Tool steps run in a temporary directory; the
        files move into ``out_dir`` only when every step succeeded. ``None``: nothing is kept.
    freq_mhz : float or None
        Clock constraint for nextpnr (default: the target's).
    seed : int
        nextpnr placer seed (same seed, same placement).
    progress : callable or None
        Called with a one-line message before each step.

    Raises
    ------
    BnnflowError
        Unknown target, bad folding (``ValueError`` from the folding is turned into this).
    DoesNotFit
        More LUT4 or block RAM than the target has (says by how much, and which ``--ii``
        should fit).
    ToolError
        A tool is missing or fails.
    """
    import time

    from amaranth.back import rtlil

    from ..hw.top import BnnTop
    from .wrapper import WRAPPER_NOTE, SynthWrapper

    tgt = get_target(target)
    say = progress or (lambda msg: None)
    fold, fold_text = checked_folding(model, folding, ii, tgt)
    yosys = find_tool("yosys")
    nextpnr = find_tool(f"nextpnr-{tgt.family}")

    try:
        bnn = BnnTop(model, fold, pipeline)
    except ValueError as e:
        raise BnnflowError(str(e)) from None

    steps = {}
    build = _make_build_dir(out_dir)
    # Logs of a failed step outlive the temporary build directory.
    keep = out_dir if out_dir is not None else Path(tempfile.gettempdir()) / "bnnflow-logs"
    try:
        say(f"generate RTLIL ({fold_text}, II {bnn.ii})")
        t = time.perf_counter()
        text = rtlil.convert(SynthWrapper(bnn), name=SYNTH_TOP)
        (build / "design.il").write_text(text, encoding="utf-8")
        steps["generate"] = round(time.perf_counter() - t, 3)

        say(f"yosys synth_{tgt.family}")
        (build / "synth.ys").write_text(
            "read_rtlil design.il\n"
            f"synth_{tgt.family} -top {SYNTH_TOP} -json netlist.json\n"
            "tee -q -o stat.json stat -json\n", encoding="utf-8")
        steps["yosys"] = round(run_step("yosys", [*yosys, "synth.ys"], cwd=build,
                                        log=build / "yosys.log", keep_log_dir=keep), 3)
        stat = json.loads((build / "stat.json").read_text(encoding="utf-8"))
        by_type = {t: n for t, n in stat["design"]["num_cells_by_type"].items()
                   if not t.startswith("$scopeinfo")}
        counts = cell_counts(tgt.family, by_type)

        logic = counts["lut4"] + (2 * counts["carry"] if tgt.family == "ecp5" else 0)
        if logic > tgt.lut4:
            raise DoesNotFit(
                f"the design needs {logic} LUT4 (folding {fold_text}), the {tgt.name} has "
                f"{tgt.lut4}: {logic - tgt.lut4} too many ({logic / tgt.lut4:.0%} of the "
                f"device); {_fit_hint(model, fold, logic, tgt.lut4, tgt.bram, tgt.family)}")
        if counts["bram"] > tgt.bram:
            raise DoesNotFit(
                f"the design needs {counts['bram']} block RAMs (folding {fold_text}), the "
                f"{tgt.name} has {tgt.bram}: {counts['bram'] - tgt.bram} too many; "
                f"{_fit_hint(model, fold, counts['bram'], tgt.bram, tgt.bram, tgt.family)}")

        freq = float(freq_mhz if freq_mhz is not None else tgt.freq_mhz)
        say(f"nextpnr-{tgt.family} {' '.join(tgt.nextpnr_args)} (constraint {freq:g} MHz)")
        try:
            steps["nextpnr"] = round(run_step(
                "nextpnr", [*nextpnr, *tgt.nextpnr_args, "--json", "netlist.json",
                            "--report", "pnr.json", "--timing-allow-fail",
                            "--freq", f"{freq:g}", "--seed", str(seed)],
                cwd=build, log=build / "nextpnr.log", keep_log_dir=keep), 3)
        except BnnflowError:
            tail = log_tail(build / "nextpnr.log", 200)
            if "Unable to place" in tail or "no BELs remaining" in tail or "too many" in tail:
                raise DoesNotFit(
                    f"nextpnr could not place the design on the {tgt.name} ({logic} LUT4 of "
                    f"{tgt.lut4}, {counts['ff']} FF); "
                    f"{_fit_hint(model, fold, logic, 0.9 * tgt.lut4, tgt.bram, tgt.family)}"
                ) from None
            raise
        pnr = json.loads((build / "pnr.json").read_text(encoding="utf-8"))

        report = _report(tgt, pnr, counts, by_type, bnn, fold_text, pipeline, freq, steps,
                         yosys, nextpnr, WRAPPER_NOTE)
        if out_dir is not None:
            out_dir = Path(out_dir)
            for src, dst in (("yosys.log", "yosys.log"), ("nextpnr.log", "nextpnr.log"),
                             ("pnr.json", "nextpnr-report.json"), ("stat.json", "yosys-stat.json")):
                os.replace(build / src, out_dir / dst)
            write_text_atomic(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
        return report
    finally:
        shutil.rmtree(build, ignore_errors=True)


def _percent(used, available):
    return round(100.0 * used / available, 2) if available else None


def _report(tgt, pnr, counts, by_type, bnn, fold_text, pipeline, freq, steps, yosys, nextpnr,
            wrapper):
    from ..model.artifact import model_checksum

    util = pnr.get("utilization", {})

    def used(cell):
        return util.get(cell, {}).get("used", 0), util.get(cell, {}).get("available", 0)

    achieved = [c["achieved"] for c in pnr.get("fmax", {}).values() if "achieved" in c]
    fmax = round(min(achieved), 2) if achieved else None
    logic_used, logic_avail = used(_LOGIC_CELL[tgt.family])
    ff_used, ff_avail = used(_FF_CELL[tgt.family])
    if tgt.family == "ice40":
        ff_used = counts["ff"]
    bram_used, bram_avail = used(_BRAM_CELL[tgt.family])
    io_used, io_avail = used(_IO_CELL[tgt.family])
    manifest, _ = bnn.model.manifest()
    return {
        "target": tgt.name,
        "family": tgt.family,
        "device_args": list(tgt.nextpnr_args),
        "lut4": counts["lut4"],
        "ff": counts["ff"],
        "carry": counts["carry"],
        "bram": counts["bram"],
        "spram": counts["spram"],
        "logic_cells": logic_used,
        "cells": by_type,
        "capacity": {"logic_cells": logic_avail or tgt.lut4, "bram": bram_avail or tgt.bram,
                     "spram": tgt.spram, "io": io_avail},
        "utilization": {"logic": _percent(logic_used, logic_avail),
                        "ff": _percent(ff_used, ff_avail),
                        "bram": _percent(bram_used, bram_avail),
                        "io": _percent(io_used, io_avail)},
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
        "logic_note": ("lut4 counts LUT4 cells from Yosys; on ECP5 each CCU2C carry cell holds "
                       "two more LUT4s (logic_cells is nextpnr's count of placed "
                       f"{_LOGIC_CELL[tgt.family]})"),
    }
