"""Sweep foldings x targets x pipelines x placer seeds of a .bnn model, one out-of-context
synthesis (Yosys, nextpnr) per combination, as tasks on Dask, and report the Pareto front.

For every target: the auto folding at each --ii and the fit folding (the fastest that places;
--no-fit leaves it out), at every --pipeline depth, with --seeds nextpnr placer seeds (1..N).
Each run has its own temporary directory and a time limit (--timeout); one that fails or runs
out of time is a record with its one-line error, and the sweep goes on. One line per finished
run goes to stderr (runs done / running / failed and the best point so far).

Results: DIR/runs/<key>.json, one record per run, written atomically as it finishes (the key
hashes the model checksum, target, folding, pipeline, seed, clock and tool versions);
DIR/results.json (every record, with the model checksum, tool versions and options) and, when
the sweep completes, DIR/results.md and DIR/pareto_<target>.png (images/s against LUT4 with
the Pareto front; Fmax against II). Running the same command again skips the runs already
recorded (marked cached: true), so an interrupted sweep continues where it stopped.

Dask: by default a local cluster with one single-threaded worker process per core (--workers);
--scheduler tcp://HOST:8786 uses a running cluster ('dask scheduler' on one machine, 'dask
worker tcp://HOST:8786 --nthreads 1' on each machine, with bnnflow installed; the model goes
to the workers with each task, no shared folder is needed). Exit status: 0 when every run
finished (placed or not), 1 when some failed or timed out, 2 on bad input, 130 when
interrupted (what finished is kept).
"""

import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    from ..dask_pool import add_cluster_arguments
    from .targets import TARGETS

    parser.add_argument("model", metavar="MODEL", help="path of a .bnn file")
    parser.add_argument("--targets", default="ecp5-85k,ice40-up5k",
                        metavar=",".join(TARGETS),
                        help="devices, comma separated (default: ecp5-85k,ice40-up5k)")
    parser.add_argument("--ii", default="64,256,1024", metavar="CYCLES,...",
                        help="target IIs of the auto folding (default: 64,256,1024)")
    parser.add_argument("--no-fit", action="store_true",
                        help="leave out the fit folding of each target")
    parser.add_argument("--pipeline", default="0", metavar="STAGES,...",
                        help="popcount pipeline depths, comma separated (default: 0)")
    parser.add_argument("--seeds", type=int, default=1, metavar="N",
                        help="nextpnr placer seeds 1..N for each design (default: 1)")
    parser.add_argument("--freq", type=float, default=None, metavar="MHZ",
                        help="clock constraint for nextpnr (default: each target's)")
    add_cluster_arguments(parser, 30.0, "run")
    parser.add_argument("--retry-failed", action="store_true",
                        help="run again the recorded runs that failed or timed out")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder of the results (re-use it to continue a sweep)")


def _check(args):
    """The parsed lists: ``(targets, iis, pipelines, seeds)``; ExploreError on bad input."""
    from ..dask_pool import check_scheduler_address
    from .explore import ExploreError, parse_int_list, parse_targets

    targets = parse_targets(args.targets)
    iis = parse_int_list(args.ii, "--ii", minimum=1)
    pipelines = parse_int_list(args.pipeline, "--pipeline")
    if args.seeds < 1:
        raise ExploreError(f"--seeds must be a positive integer, not {args.seeds}")
    if not args.timeout > 0:
        raise ExploreError(f"--timeout must be a positive number of minutes, not "
                           f"{args.timeout:g}")
    if args.workers is not None and args.workers < 1:
        raise ExploreError(f"--workers must be a positive integer, not {args.workers}")
    if args.freq is not None and not 0 < args.freq < 10_000:     # nan too, as synth
        raise ExploreError(f"--freq must be a clock in MHz above 0, such as 48, not "
                           f"{args.freq:g}")
    if args.scheduler is not None:
        check_scheduler_address(args.scheduler)
        if args.workers is not None:
            print("note: --workers is ignored with --scheduler: the workers that joined the "
                  "scheduler run the tasks", file=sys.stderr)
    return targets, iis, pipelines, list(range(1, args.seeds + 1))


def run(args):
    import time

    from ..dask_pool import open_client
    from ..fileio import check_output_dir, make_output_dir
    from ..model import artifact
    from .explore import RETRY, explore
    from .explore_report import write_reports

    targets, iis, pipelines, seeds = _check(args)
    artifact.load(args.model)
    out = make_output_dir(check_output_dir(args.out, "--out"), "--out")
    started = time.monotonic()
    # SIGTERM interrupts as Ctrl-C does (bnnflow.cli): the cluster is closed, what finished kept
    header, records = explore(
        args.model, out, lambda: open_client(args.scheduler, args.workers),
        targets=targets, iis=iis, pipelines=pipelines, seeds=seeds, timeout=args.timeout,
        freq_mhz=args.freq, fit=not args.no_fit, retry_failed=args.retry_failed)
    paths = write_reports(out, header, records)
    failed = sum(r["status"] in RETRY for r in records)
    placed = sum(r["placed"] for r in records)
    cached = sum(bool(r.get("cached")) for r in records)
    print(f"explore: {len(records)} runs ({cached} cached): {placed} placed, "
          f"{len(records) - placed - failed} did not place, {failed} failed or timed out; "
          f"{time.monotonic() - started:.1f} s")
    print(f"wrote {out / 'results.json'}, " + ", ".join(str(p) for p in paths))
    return 1 if failed else 0
