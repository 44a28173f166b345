"""Resource estimate against Yosys and nextpnr: the calibration table of boards/README.md.

Run as ``.venv/bin/python bench/fit_bench.py [--designs NAME ...] [--jobs 2] [--out DIR]``.

For every design (a network, a target, a folding, a pipeline depth) it prints and writes
(``DIR/fit_results.json``, ``DIR/fit_results.md``; default ``bench/``) the estimates of
:mod:`bnnflow.boards.estimate` (LUT4, flip-flops, block RAM, logic cells) beside Yosys' counts
and whether nextpnr placed the design (:func:`bnnflow.boards.synth.synthesize`, out of context
in the synthesis wrapper, nextpnr seeds 1-3). The trained networks are trained here with the
fixed seeds of ``bnnflow train``'s presets (tfc on digits and on mnist5k, a few minutes on 2
cores); the random ones come from :func:`bnnflow.model.random_net.random_model`.
"""

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: name -> (network, target, folding, pipeline); networks: "digits", "mnist5k" (tfc, trained)
#: or a list of layer widths (random, seed 0).
DESIGNS = {
    "digits-ii64-p2": ("digits", "ice40-up5k", "auto:64", 2),
    "digits-ii128-p2": ("digits", "ice40-up5k", "auto:128", 2),
    "digits-ii256-p2": ("digits", "ice40-up5k", "1x48,1x16,1x16,1x3", 2),
    "digits-ii256-p0": ("digits", "ice40-up5k", "1x48,1x16,1x16,1x3", 0),
    "digits-ii512-p2": ("digits", "ice40-up5k", "auto:512", 2),
    "mnist5k-ii256-p2": ("mnist5k", "ice40-up5k", "auto:256", 2),
    "mnist5k-ii512-p2": ("mnist5k", "ice40-up5k", "auto:512", 2),
    "mnist5k-ii1024-p2": ("mnist5k", "ice40-up5k", "auto:1024", 2),
    "tfc64-ii32-p2": ([64, 64, 64, 64, 10], "ice40-up5k", "auto:32", 2),
    "tfc64-ii64-p0": ([64, 64, 64, 64, 10], "ice40-up5k", "auto:64", 0),
    "digits-ii256-ecp5": ("digits", "ecp5-25k", "1x48,1x16,1x16,1x3", 2),
}


def _model(network, cache):
    from bnnflow.model import artifact

    if isinstance(network, list):
        from bnnflow.model.random_net import random_model

        return random_model(network, seed=0)
    path = Path(cache) / network / "model.bnn"
    if not path.exists():
        from bnnflow.model import train

        train.train_and_export(preset="tfc", dataset=network, seed=0, out=str(path.parent))
    return artifact.load(path)


def measure(name, cache):
    """Estimate and synthesize one design: a dict of figures (``error`` when a tool failed)."""
    from bnnflow.boards import estimate
    from bnnflow.boards.fit import NotPlaced
    from bnnflow.boards.synth import synthesize
    from bnnflow.boards.targets import get_target
    from bnnflow.errors import BnnflowError
    from bnnflow.hw.folding import auto_fold, resolve_folding

    network, target, fold, pipeline = DESIGNS[name]
    model = _model(network, cache)
    family = get_target(target).family
    folding = (auto_fold(model, int(fold[5:]))[0] if fold.startswith("auto:")
               else resolve_folding(model, fold))
    row = {"design": name, "target": target, "pipeline": pipeline,
           "widths": [model.input.width] + [layer.out_width for layer in model.layers],
           "folding": ",".join(str(f) for f in folding),
           "est_lut4": estimate.estimate_luts(model, folding, family),
           "est_ff": estimate.estimate_ffs(model, folding, pipeline, family),
           "est_bram": estimate.estimate_brams_used(model, folding, family),
           "est_logic": estimate.estimate_logic(model, folding, family, pipeline)}
    t = time.perf_counter()
    try:
        rep = synthesize(model, target, folding, pipeline=pipeline)
        row.update(lut4=rep["lut4"], ff=rep["ff"], bram=rep["bram"], carry=rep["carry"],
                   lutram=rep["lutram"], logic=rep["logic"], logic_cells=rep["logic_cells"],
                   placed=True, fmax_mhz=rep["fmax_mhz"], ii=rep["ii"])
    except NotPlaced as e:
        row.update(placed=False, need=e.need, error=str(e).split(";")[0])
    except BnnflowError as e:
        row.update(placed=None, error=str(e).splitlines()[0])
    row["seconds"] = round(time.perf_counter() - t, 1)
    return row


def markdown(rows):
    head = ("| design | target | folding | P | logic est / Yosys | FF est / Yosys | BRAM est / "
            "Yosys | logic cells est / placed | placed |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        placed = {True: "yes", False: "no", None: "error"}[r["placed"]]
        cells = r.get("logic_cells") or r.get("need") or "-"
        lines.append(
            f"| {r['design']} | {r['target']} | {r['folding']} | {r['pipeline']} | "
            f"{r['est_lut4']} / {r.get('logic', '-')} | {r['est_ff']} / {r.get('ff', '-')} | "
            f"{r['est_bram']} / {r.get('bram', '-')} | {r['est_logic']} / {cells} | {placed} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", nargs="*", default=list(DESIGNS), choices=list(DESIGNS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=str(HERE))
    parser.add_argument("--cache", default=None,
                        help="folder for the trained models (default: a temporary one)")
    args = parser.parse_args(argv)
    cache = args.cache or tempfile.mkdtemp(prefix="bnnflow-fit-")
    for network in {DESIGNS[d][0] for d in args.designs if isinstance(DESIGNS[d][0], str)}:
        _model(network, cache)          # train once, before the workers share the cache
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(measure, args.designs, [cache] * len(args.designs)))
    for r in rows:
        print(json.dumps(r), flush=True)
    out = Path(args.out)
    (out / "fit_results.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    (out / "fit_results.md").write_text(markdown(rows), encoding="utf-8")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
