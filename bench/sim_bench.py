"""Simulator speed comparison and whole-data-set checks for ``bnnflow verify`` (not in the suite).

Runs :func:`bnnflow.sim.verify.run_verify` for each simulator on one design and prints build
time, simulation time, cycles simulated and cycles per second. Without a model it uses a random
tfc-sized network (64-64-64-64-10) carrying the digits provenance, so the whole digits test
split streams through it.

Examples::

    .venv/bin/python bench/sim_bench.py        # all three, 100 images, fully parallel
    .venv/bin/python bench/sim_bench.py --sims verilator --images all --stall 0.2
    .venv/bin/python bench/sim_bench.py MODEL.bnn --fold auto --ii 16 --json out.json

Builds are cached under ``--build-dir`` (default: a fresh temporary directory, so build times
are cold unless you pass a directory used before).

``--repeat N`` runs each simulator N times (the build is reused) and keeps the report of the run
with the median cycles/s, adding every run's figure under ``cycles_per_second_runs``. A short
clock loop (verilator-direct checks the sfc test split in about 0.1 s) is easily preempted on a
shared machine, so one run can be far off; quote the median of several (run_all uses 7).
"""

import argparse
import json
import sys
import tempfile
import time


def _default_model(seed):
    from bnnflow.model.artifact import BnnModel, InputSpec
    from bnnflow.model.random_net import random_model

    base = random_model([64, 64, 64, 64, 10], seed=seed)
    return BnnModel(layers=base.layers,
                    input=InputSpec(width=64, shape=(8, 8),
                                    encoding={"kind": "threshold", "scale": 16.0,
                                              "threshold": 0.5}),
                    classes=base.classes,
                    provenance={"source": "random_model", "dataset": "digits", "split_seed": 0,
                                "test_fraction": 0.2})


def median_run(runs):
    """The report of the run with the median ``cycles_per_second`` (the lower one of an even
    count), with ``passed`` true only if every run passed, ``repeat`` and
    ``cycles_per_second_runs`` (every run's figure, sorted) added."""
    ordered = sorted(runs, key=lambda r: r["cycles_per_second"] or 0.0)
    rep = dict(ordered[(len(ordered) - 1) // 2])
    rep["passed"] = all(r["passed"] for r in runs)
    rep["repeat"] = len(runs)
    rep["cycles_per_second_runs"] = [r["cycles_per_second"] for r in ordered]
    return rep


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help=".bnn model (default: random tfc on digits)")
    parser.add_argument("--sims", default="amaranth,icarus,verilator")
    parser.add_argument("--fold", default=None)
    parser.add_argument("--ii", type=int, default=None)
    parser.add_argument("--pipeline", type=int, default=0)
    parser.add_argument("--images", default="100", help="N or all")
    parser.add_argument("--stall", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--build-dir", default=None)
    parser.add_argument("--json", default=None, help="write the reports here")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per simulator; the median run is reported (default 1)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, not {args.repeat}")

    from rich.console import Console
    from rich.table import Table

    from bnnflow.fileio import write_text_atomic
    from bnnflow.model.artifact import load
    from bnnflow.sim.verify import run_verify

    model = load(args.model) if args.model else _default_model(args.seed)
    images = None if args.images == "all" else int(args.images)
    build_root = args.build_dir or tempfile.mkdtemp(prefix="bnnflow-sim-bench-")
    reports = {}
    for sim in args.sims.split(","):
        runs = []
        for _ in range(args.repeat):
            started = time.monotonic()
            rep = run_verify(model, simulator=sim, fold=args.fold, ii=args.ii,
                             pipeline=args.pipeline, images=images, stall=args.stall,
                             seed=args.seed, build_root=build_root, show_progress=True)
            rep["bench_seconds"] = round(time.monotonic() - started, 3)
            runs.append(rep)
        reports[sim] = median_run(runs)

    table = Table(title="bnnflow verify: simulators compared")
    for col in ("simulator", "result", "images", "cycles", "build s", "simulate s", "wall s",
                "cycles/s", "II", "latency"):
        table.add_column(col, justify="right")
    for sim, rep in reports.items():
        table.add_row(sim, "PASS" if rep["passed"] else "FAIL", str(rep["images"]),
                      str(rep["cycles"]), f"{rep['build_seconds']:.1f}",
                      f"{rep['sim_seconds']:.1f}", f"{rep['wall_seconds']:.1f}",
                      f"{rep['cycles_per_second']:.0f}",
                      f"{rep['ii_measured']}/{rep['ii_expected']}",
                      f"{rep['latency_measured']}/{rep['latency_expected']}")
    Console().print(table)
    if args.json:
        write_text_atomic(args.json, json.dumps(reports, indent=2) + "\n")
    return 0 if all(rep["passed"] for rep in reports.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
