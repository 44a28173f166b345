"""The LUT4 model of an MVTU, refitted: Yosys counts of many generated designs, and the fit.

Run as ``.venv/bin/python bench/unit_luts.py collect [--family F] [--only TEXT ...]`` (Yosys on
every design not yet in ``bench/unit_luts.jsonl``, two at a time; hours for all of them on 2
cores; the committed file has those measured on 2026-12-06, the slowest left out), then
``.venv/bin/python bench/unit_luts.py fit``: the coefficients of
:data:`bnnflow.boards.estimate_mvtu.MVTU_LUT` and ``_ARGMAX_LUT`` the data give, and how the
current estimate compares with every design.

Designs: random MLPs (64-64-64-10, 192-64-64-64-10, 784-64-64-64-10, 100-37-23-10,
256-128-128-10) and the conv nets of ``bench/conv_estimate.py`` (cnv-mnist's shape, a padded
and a strided one), each binary, with 2-bit activations and with ternary weights (MLPs also
with 8-bit inputs), at ``--fold auto`` for several IIs, and fully parallel MLPs; both families.
Each is synthesized as ``bnnflow synth`` does (the synthesis wrapper, the family's ROM
register), flattened; iCE40 designs also with ``synth_ice40 -noflatten`` (each unit's own
counts; the flattened design has 0.90-0.99 of their sum). Per module, ECP5 LUT4 counts moved
by up to 25 % against the flattened design, so the coefficients are fitted on whole flattened
designs (``unit_luts_fit.py``).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "unit_luts.jsonl"
sys.path.insert(0, str(HERE))

MLPS = {"m64": [64, 64, 64, 10], "tfc192": [192, 64, 64, 64, 10],
        "tfc784": [784, 64, 64, 64, 10], "odd": [100, 37, 23, 10], "w256": [256, 128, 128, 10]}
KINDS = {"w1a1": {}, "a2": {"act_bits": 2}, "tern": {"ternary": True}, "in8": {"input_bits": 8}}
FULL = (("m32", [32, 32, 10], "32x32,10x32"), ("m64", [64, 64, 64, 10], "64x64,64x64,10x64"),
        ("odd", [40, 37, 23, 10], "37x40,23x37,10x23"), ("m128", [128, 64, 10], "64x128,10x64"),
        ("mixed", [128, 64, 10], "64x128,1x64"))


def specs():
    """Every design: ``{"name", "net", "opts", "family", "ii" or "fold", "flat"}``."""
    from conv_estimate import CNV_MNIST, PADDED, STRIDED

    out = []
    for fam in ("ice40", "ecp5"):
        for nname, widths in MLPS.items():
            for kname, opts in KINDS.items():
                out += [{"name": f"{nname}-{kname}-{ii}-{fam}", "net": ["mlp", widths],
                         "opts": opts, "family": fam, "ii": ii} for ii in (16, 64, 256, 1024)]
        for nname, net in (("cnv", CNV_MNIST), ("padded", PADDED), ("strided", STRIDED)):
            for kname in ("w1a1", "a2", "tern"):
                for ii in ((1024, 4096, 16384) if nname == "cnv" else (512, 2048, 8192)):
                    if nname == "cnv" and kname != "w1a1" and ii == 1024:
                        continue
                    out.append({"name": f"{nname}-{kname}-{ii}-{fam}", "net": ["conv", net],
                                "opts": KINDS[kname], "family": fam, "ii": ii})
    # iCE40 designs twice: -noflatten (each unit's counts) and flattened.
    out = [{**s, "flat": True, "name": s["name"] + "+flat"} for s in out
           if s["family"] == "ice40"] + [{**s, "flat": s["family"] == "ecp5"} for s in out]
    for fam in ("ice40", "ecp5"):
        for nname, widths, fold in FULL:
            for kname in ("w1a1", "a2", "tern"):
                out.append({"name": f"{nname}-{kname}-full-{fam}", "net": ["mlp", widths],
                            "opts": KINDS[kname], "family": fam, "fold": fold, "flat": True})
    return out


def make_model(spec):
    from bnnflow.model.random_net import random_conv_model, random_model

    if spec["net"][0] == "mlp":
        return random_model(spec["net"][1], seed=0, **spec["opts"])
    shape, stages, classes = spec["net"][1]
    return random_conv_model(tuple(shape), stages, classes, seed=0, **spec["opts"])


def make_folding(spec, model):
    from bnnflow.hw.folding import resolve_folding

    if "fold" in spec:
        return resolve_folding(model, spec["fold"])
    return resolve_folding(model, "auto", spec["ii"])


def measure(spec):
    """Yosys on one design: the whole design's cell counts, and per module (``-noflatten``)
    unless ``spec["flat"]``."""
    from bnnflow.boards.estimate import ROM_REGISTER
    from bnnflow.boards.synth import SYNTH_TOP, _write_rtlil
    from bnnflow.boards.tools import find_tool
    from bnnflow.hw.top import BnnTop

    fam = spec["family"]
    model = make_model(spec)
    folding = make_folding(spec, model)
    bnn = BnnTop(model, folding, 0, rom_register=ROM_REGISTER[fam])
    flat = "" if spec["flat"] else " -noflatten"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _write_rtlil(bnn, tmp)
        (tmp / "s.ys").write_text(f"read_rtlil design.il\nsynth_{fam}{flat} -top {SYNTH_TOP}\n"
                                  "tee -q -o stat.json stat -json\n", encoding="utf-8")
        t = time.time()
        subprocess.run([*find_tool("yosys"), "-q", "s.ys"], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        stat = json.loads((tmp / "stat.json").read_text(encoding="utf-8"))
    modules = {name.strip("\\"): m.get("num_cells_by_type", {})
               for name, m in stat["modules"].items()}
    return {**spec, "folding": ",".join(map(str, folding)), "seconds": round(time.time() - t, 1),
            "design_cells": stat["design"]["num_cells_by_type"],
            **({} if spec["flat"] else {"modules": modules})}


def collect(families, only, jobs):
    done = set()
    if DATA.exists():
        done = {json.loads(line)["name"] for line in DATA.read_text().splitlines()}
    todo = [s for s in specs() if s["name"] not in done and s["family"] in families
            and (not only or any(text in s["name"] for text in only))]
    print(f"{len(todo)} designs to synthesize", flush=True)
    with ProcessPoolExecutor(jobs) as pool, DATA.open("a") as f:
        for row in pool.map(measure, todo):
            f.write(json.dumps(row) + "\n")
            f.flush()
            print(row["name"], row["seconds"], "s", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["collect", "fit"])
    parser.add_argument("--family", nargs="+", default=["ice40", "ecp5"])
    parser.add_argument("--only", nargs="+", default=[], help="designs whose name has this")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    if args.what == "collect":
        collect(args.family, args.only, args.jobs)
    else:
        from unit_luts_fit import fit_all

        fit_all([json.loads(line) for line in DATA.read_text().splitlines()])


if __name__ == "__main__":
    main()
