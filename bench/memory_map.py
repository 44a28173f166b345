"""Where Yosys puts each memory of generated designs, against bnnflow.boards.memory_map.

Run as ``.venv/bin/python bench/memory_map.py [--jobs 2]`` (about 3 minutes on 2 cores).

For the conv designs of ``bench/conv_estimate.py`` and a few MLPs it writes each design as
``bnnflow synth`` does, reads every memory's width, depth, write ports and read transparency
from Yosys (``memory -nomap``), runs ``synth_<family>`` and reads from its log where
``memory_libmap`` put the memory (a cell type, or flip-flops), then compares with
:func:`bnnflow.boards.memory_map.placement`. Threshold tables (Yosys' ``proc_rom`` ROMs) are
named anew in each Yosys run, so they are counted but not matched. Writes
``bench/memory_map.json``: per memory the dimensions, Yosys' choice and the prediction.
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: name -> (layer widths of a random MLP, family, folding).
MLPS = {
    "mlp192-ii256-ice40": ([192, 64, 64, 64, 10], "ice40", "1x48,1x16,1x16,1x3"),
    "mlp192-ii512-ice40": ([192, 64, 64, 64, 10], "ice40", "1x24,1x8,1x8,1x2"),
    "mlp784-ii512-ice40": ([784, 64, 64, 64, 10], "ice40", "auto:512"),
    "mlp784-ii1024-ice40": ([784, 64, 64, 64, 10], "ice40", "auto:1024"),
    "mlp192-ii64-ice40": ([192, 64, 64, 64, 10], "ice40", "auto:64"),
    "mlp192-ii256-ecp5": ([192, 64, 64, 64, 10], "ecp5", "1x48,1x16,1x16,1x3"),
    "mlp784-ii1024-ecp5": ([784, 256, 256, 256, 10], "ecp5", "auto:1024"),
    "mlp784-ii128-ecp5": ([784, 256, 256, 256, 10], "ecp5", "auto:128"),
    "mlp784-ii4096-ice40": ([784, 256, 256, 256, 10], "ice40", "auto:4096"),
}
#: Yosys' mapping cells -> the primitives memory_map names.
PRIMITIVES = {"$__ICE40_RAM4K_": "SB_RAM40_4K", "$__DP16KD_": "DP16KD",
              "$__PDPW16KD_": "PDPW16KD", "$__TRELLIS_DPR16X4_": "TRELLIS_DPR16X4"}


def _design(name):
    import conv_estimate

    from bnnflow.model.random_net import random_conv_model, random_model

    if name in MLPS:
        widths, family, fold = MLPS[name]
        return random_model(widths, seed=0), family, fold
    (shape, stages, classes), options, family, fold = conv_estimate.DESIGNS[name]
    return random_conv_model(shape, stages, classes, seed=0, **options), family, fold


def yosys_memories(bnn, family):
    """Every memory of design ``bnn`` as Yosys builds it for ``family``: dicts of ``memory``,
    ``width``, ``depth``, ``rom``, ``transparent`` and ``yosys`` (the primitive
    ``memory_libmap`` chose, ``None`` for logic; ``"table"`` for a threshold table, which
    Yosys names anew in each run and so cannot be matched)."""
    from bnnflow.boards.synth import _write_rtlil
    from bnnflow.sim.netlist import yosys_command

    with tempfile.TemporaryDirectory() as tmp:
        # Relative names: the WebAssembly Yosys sees the working directory.
        _write_rtlil(bnn, Path(tmp))
        (Path(tmp) / "mems.ys").write_text(
            "read_rtlil design.il\nhierarchy -top bnnflow_synth\nproc\nflatten\nopt_clean\n"
            "memory -nomap\nselect t:$mem_v2\nwrite_json -selected mems.json\n")
        (Path(tmp) / "synth.ys").write_text(f"read_rtlil design.il\nsynth_{family} -top "
                                            f"bnnflow_synth\n")
        subprocess.run([*yosys_command(), "-q", "mems.ys"], cwd=tmp, check=True)
        subprocess.run([*yosys_command(), "-q", "-l", "log.txt", "synth.ys"], cwd=tmp,
                       check=True, capture_output=True)
        log = (Path(tmp) / "log.txt").read_text()
        cells = json.loads((Path(tmp) / "mems.json").read_text())["modules"]
    chosen = {n: PRIMITIVES.get(c, c) for n, c in
              re.findall(r"^mapping memory \S+?\.(\S+) via (\S+)$", log, re.M)}
    chosen |= dict.fromkeys(re.findall(r"^using FF mapping for memory \S+?\.(\S+)$", log, re.M))
    rows = []
    for cell in cells["bnnflow_synth"]["cells"].values():
        p = cell["parameters"]
        memid = p["MEMID"].lstrip("\\")
        rows.append({"memory": memid, "width": int(p["WIDTH"], 2), "depth": int(p["SIZE"], 2),
                     "rom": int(p["WR_PORTS"], 2) == 0,
                     "transparent": "1" in p["RD_TRANSPARENCY_MASK"],
                     "no_rw_check": "no_rw_check" in cell.get("attributes", {}),
                     "yosys": "table" if "proc_rom" in memid else chosen[memid]})
    return rows


def measure(name):
    """Every memory of design ``name``: dimensions, Yosys' placement and the prediction."""
    from bnnflow.boards.estimate import ROM_REGISTER
    from bnnflow.boards.memory_map import placement
    from bnnflow.hw.folding import resolve_folding
    from bnnflow.hw.top import BnnTop

    model, family, fold = _design(name)
    folding = (resolve_folding(model, "auto", int(fold[5:])) if fold.startswith("auto:")
               else resolve_folding(model, fold))
    bnn = BnnTop(model, folding, 0, rom_register=ROM_REGISTER[family])
    rows = []
    for mem in yosys_memories(bnn, family):
        place = placement(family, mem["width"], mem["depth"], rom=mem["rom"],
                          transparent=mem["transparent"], no_rw_check=mem["no_rw_check"])
        table = mem["yosys"] == "table"
        rows.append({"design": name, "family": family, **mem,
                     "yosys": None if table else mem["yosys"],
                     "predicted": place.cell, "cells": place.cells, "threshold_table": table})
    return rows


def main(argv=None):
    import conv_estimate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    names = list(conv_estimate.DESIGNS) + list(MLPS)
    rows = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for design in pool.map(measure, names):
            rows += design
            matched = [r for r in design if not r["threshold_table"]]
            agree = sum(r["yosys"] == r["predicted"] for r in matched)
            print(f"{design[0]['design']}: {agree} of {len(matched)} memories where Yosys put "
                  f"them ({len(design) - len(matched)} threshold tables)", flush=True)
    matched = [r for r in rows if not r["threshold_table"]]
    agree = sum(r["yosys"] == r["predicted"] for r in matched)
    print(f"all: {agree} of {len(matched)}")
    (HERE / "memory_map.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if agree == len(matched) else 1


if __name__ == "__main__":
    sys.exit(main())
