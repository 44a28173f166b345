"""Row windows against windows in registers at the same foldings: Yosys' counts.

Run as ``.venv/bin/python bench/row_windows.py [--jobs 2] [--out FILE]`` (about 5.5 minutes on
2 cores; writes ``bench/row_windows.json``). The table is in bench/README.md, "Windows a row a
cycle".

A random network of cnv-mnist's shape at the foldings of ``--fold auto --ii 2048`` and
``4096`` (and the old ``4096`` one), each conv layer's window kind chosen three ways: as
:func:`bnnflow.hw.conv.window_kind` chooses (``auto``), never rows (``norows``: pixels or
registers, as before the row window) and rows wherever they can be built (``allrows``). Each
design (``BnnTop(model, folding, rom_register=True)``, no wrapper) goes through
``synth_<family>`` flattened for ECP5 and iCE40.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent

CNV_MNIST = ((28, 28, 1), [("conv", 16, 3), ("conv", 16, 3), ("pool", 2), ("conv", 32, 3),
                           ("conv", 32, 3), ("pool", 2), ("dense", 128)], 10)
FOLDINGS = ["8x3,16x21,1x1,8x16,5x32,1x1,1x32,1x1", "8x3,8x48,1x1,8x16,5x32,1x1,1x32,1x1",
            "16x3,16x48,1x1,16x16,2x160,1x1,1x32,1x1"]
CHOICES = ("auto", "norows", "allrows")
FAMILIES = ("ecp5", "ice40")


def measure(job):
    """Yosys' counts of one (folding, choice, family)."""
    from amaranth.back import rtlil

    import bnnflow.hw.conv as conv
    from bnnflow.hw.folding import row_window_misfit
    from bnnflow.hw.top import BnnTop
    from bnnflow.model.random_net import random_conv_model
    from bnnflow.sim.netlist import yosys_command

    fold, choice, family = job
    if choice == "norows":
        conv.rows_pay = lambda layer, f: False
    elif choice == "allrows":
        conv.rows_pay = lambda layer, f: row_window_misfit(layer, f) is None
    top = BnnTop(random_conv_model(*CNV_MNIST, seed=0), fold, rom_register=True)
    kinds = [u.window_kind for u in top.layers if hasattr(u, "window_kind")]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "top.il").write_text(rtlil.convert(top, name="top", emit_src=False))
        subprocess.run([*yosys_command(), "-q", "-p", f"read_rtlil top.il; synth_{family} "
                        "-top top; tee -q -o s.json stat -json"], cwd=tmp, check=True)
        cells = json.loads((Path(tmp) / "s.json").read_text())["modules"]["\\top"][
            "num_cells_by_type"]
    count = lambda *names: sum(cells.get(n, 0) for n in names)  # noqa: E731
    row = {"folding": fold, "choice": choice, "family": family, "windows": kinds,
           "ii": top.ii, "latency": top.latency,
           "ff": sum(v for k, v in cells.items() if "DFF" in k or k == "TRELLIS_FF"),
           "lut4": count("SB_LUT4", "LUT4"), "carry": count("SB_CARRY", "CCU2C"),
           "lutram": count("TRELLIS_DPR16X4"), "bram": count("SB_RAM40_4K", "DP16KD")}
    row["logic"] = (round(row["lut4"] + 3.2 * row["carry"] + 6 * row["lutram"])
                    if family == "ecp5" else row["lut4"])
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "row_windows.json"))
    args = parser.parse_args(argv)
    jobs = [(f, c, fam) for f in FOLDINGS for c in CHOICES for fam in FAMILIES]
    # One process per design: the choice is patched into the process's hw.conv.
    with ProcessPoolExecutor(args.jobs, max_tasks_per_child=1) as pool:
        rows = []
        for row in pool.map(measure, jobs):
            print(json.dumps(row), flush=True)
            rows.append(row)
    Path(args.out).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
