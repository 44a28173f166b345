# amaranth: UnusedElaboratable=no
"""Verify many random networks x foldings x pipelines x stall seeds against the golden model,
as tasks on Dask.

Network i (of --random N) is the i-th --sizes entry in turn (widths, or a conv network such as
8x8x2:c4k3-p2-d6-3: the input map, then cNkK conv (cNkKsS with stride S), pW max-pool (pWsS
with stride S), dN dense stages and the classes) with seed --seed + i,
and the kind --weights, --act-bits and --input-bits say (as for train; default W1A1 with input
bits); its --images random input vectors and the network are written to DIR/nets/ (net_0007.bnn,
net_0007_inputs.npy). Each network gets --foldings random foldings (PE and SIMD uniform per
layer, padded folds included), each verified at every --pipeline depth and --stall-seeds seed
with --stall gaps and back-pressure, by the code behind 'bnnflow verify'. Every mismatch is
reported with the 'bnnflow verify ...' command that repeats it. With --fault (as verify takes
it, e.g. drop_ready:0) every design is built with that fault and is expected to fail: the
summary names any that passed. With drop_ready:J the foldings drawn make layer J+1 slower than
layer J, so that it is busy when layer J offers a vector and the fault can show.

Results: DIR/runs/<key>.json per verification (atomic; a re-run skips those done, marked
cached: true), DIR/results.json and DIR/results.md (summary and the failing commands). Dask:
a local cluster with one single-threaded worker process per core (--workers), or
--scheduler tcp://HOST:8786. Exit status: 0 when every design matched (with --fault: when
every design mismatched, so the fault was seen everywhere), 1 when any did not (or failed to
run), 2 on bad input, 130 when interrupted.
"""

import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    from ..dask_pool import add_cluster_arguments
    from .tools import SIMULATORS

    parser.add_argument("--random", type=int, default=200, metavar="N",
                        help="random networks (default: 200)")
    parser.add_argument("--sizes", default="16-8-4,24-12-6,32-16-8-4", metavar="K-N-...,...",
                        help="networks, used in turn: widths (input, then each layer) or a "
                             "conv network HxWxC:stages-classes with stages cNkK or cNkKsS "
                             "(conv, stride S), pW or pWsS (max-pool), dN (dense), e.g. "
                             "8x8x2:c4k3-p2-d6-3 (default: "
                             "16-8-4,24-12-6,32-16-8-4)")
    parser.add_argument("--foldings", type=int, default=1, metavar="K",
                        help="random foldings per network (default: 1)")
    parser.add_argument("--pipeline", default="0,2", metavar="STAGES,...",
                        help="popcount pipeline depths, each verified (default: 0,2)")
    parser.add_argument("--stall", type=float, default=0.2, metavar="P",
                        help="probability of an input gap and of back-pressure per cycle "
                             "(default: 0.2)")
    parser.add_argument("--stall-seeds", type=int, default=1, metavar="M",
                        help="stall seeds 0..M-1 per design (default: 1)")
    parser.add_argument("--images", type=int, default=16, metavar="N",
                        help="random input vectors per network (default: 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of network 0 (default: 0)")
    parser.add_argument("--weights", choices=("binary", "ternary"), default="binary",
                        help="hidden layers' weights, as train takes them (default: binary)")
    parser.add_argument("--act-bits", type=int, default=1, metavar="N",
                        help="bits of the hidden activations, 1..8 (default: 1)")
    parser.add_argument("--input-bits", type=int, default=1, metavar="N",
                        help="bits of each input element, 1..8: the random inputs are N-bit "
                             "values (default: 1)")
    parser.add_argument("--sim", default="amaranth", choices=SIMULATORS,
                        help="simulator (default: amaranth; verilator-direct builds one C++ "
                             "model per design)")
    parser.add_argument("--fault", default=None, metavar="drop_ready:J|swap_output:A,B",
                        help="build every design with this fault (each must then fail)")
    add_cluster_arguments(parser, 10.0, "verification")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder of the networks and results (re-use it to continue)")


def _int_list(text, option):
    from .campaign import CampaignError

    parts = [p.strip() for p in str(text).split(",")]
    if not all(p.isdigit() for p in parts):
        raise CampaignError(f"{option} must be a comma-separated list of integers >= 0, like "
                            f"0,2, not {text!r}")
    return sorted({int(p) for p in parts})


def _check(args):
    """``(sizes, pipelines, fault)`` after checking every option; CampaignError on bad
    input."""
    from ..dask_pool import check_scheduler_address
    from .campaign import CampaignError, parse_sizes
    from .cli_verify import _fault

    for option, value in (("--random", args.random), ("--foldings", args.foldings),
                          ("--stall-seeds", args.stall_seeds), ("--images", args.images)):
        if value < 1:
            raise CampaignError(f"{option} must be a positive integer, not {value}")
    if args.workers is not None and args.workers < 1:
        raise CampaignError(f"--workers must be a positive integer, not {args.workers}")
    if not 0.0 <= args.stall < 1.0:
        raise CampaignError(f"--stall must be a probability in [0, 1), not {args.stall:g}")
    if not args.timeout > 0:
        raise CampaignError(f"--timeout must be a positive number of minutes, not "
                            f"{args.timeout:g}")
    sizes = parse_sizes(args.sizes)
    pipelines = _int_list(args.pipeline, "--pipeline")
    fault = _fault(args.fault)
    if args.seed < 0:
        raise CampaignError(f"--seed must be an integer >= 0, not {args.seed}")
    for option, value in (("--act-bits", args.act_bits), ("--input-bits", args.input_bits)):
        if not 1 <= value <= 8:
            raise CampaignError(f"{option} must be an integer in 1..8, not {value}")
    if fault is not None and fault[0] == "drop_ready":
        # layer J needs a layer J + 1 after it
        short = [s for s in sizes if fault[1] > s.layers - 2]
        if short:
            layers = short[0].layers
            raise CampaignError(f"--fault drop_ready:{fault[1]} needs a layer {fault[1]} "
                                f"followed by another, and {short[0]} has {layers} "
                                f"layer{'s' if layers > 1 else ''}")
    if fault is not None and fault[0] == "drop_ready":
        # A max-pool takes a pixel every cycle whatever comes after it (measured: every
        # design passed with the fault), so a ready dropped in front of one cannot show.
        pooled = [s for s in sizes if s.stages and fault[1] + 1 < len(s.stages)
                  and s.stages[fault[1] + 1][0] == "pool"]
        if pooled:
            raise CampaignError(f"--fault drop_ready:{fault[1]}: layer {fault[1] + 1} of "
                                f"{pooled[0]} is a max-pool, which is never busy, so a dropped "
                                f"ready cannot show; choose a layer followed by a conv or "
                                f"dense layer")
    # Every network is made once here, so that stages that do not fit their map and faults
    # the hardware cannot take (which failed each design, counted as the fault being seen)
    # are refused before anything runs.
    from ..hw.top import BnnTop

    for spec in sizes:
        try:
            model = spec.make(0, _kind(args))
            if fault is not None:
                BnnTop(model, fault=fault)
        except ValueError as e:
            raise CampaignError(f"{e} (network {spec})") from None
    if args.scheduler is not None:
        check_scheduler_address(args.scheduler)
        if args.workers is not None:
            print("note: --workers is ignored with --scheduler: the workers that joined the "
                  "scheduler run the tasks", file=sys.stderr)
    return sizes, pipelines, fault


def _kind(args):
    """The random networks' kind, as :func:`~bnnflow.model.random_net.random_model` takes it."""
    return {"ternary": args.weights == "ternary", "act_bits": args.act_bits,
            "input_bits": args.input_bits}


def _kind_text(args):
    return (f"{args.weights} weights, {args.act_bits}-bit activations, {args.input_bits}-bit "
            f"inputs")


def _markdown(records, args, seconds):
    bad = [r for r in records if r["status"] != "passed"]
    lines = ["# bnnflow verify-campaign", "",
             f"- {len(records)} verifications of {args.random} random networks (sizes "
             f"{args.sizes}, seed {args.seed}; {_kind_text(args)}), {args.foldings} random "
             f"folding(s) each, "
             f"pipeline {args.pipeline}, stall {args.stall:g} with {args.stall_seeds} seed(s), "
             f"{args.images} random images, simulator {args.sim}"
             + (f", fault {args.fault}" if args.fault else ""),
             f"- passed {len(records) - len(bad)}, did not pass {len(bad)} "
             f"({sum(r['status'] == 'mismatch' for r in bad)} mismatching, "
             f"{sum(r['status'] in ('failed', 'timeout') for r in bad)} failed to run); "
             f"{sum(bool(r.get('cached')) for r in records)} from the cache; {seconds:.1f} s",
             ""]
    if bad:
        lines += ["| net | widths | folding | pipeline | seed | status | mismatches | first "
                  "differing layer | repeat with |", "|" + " --- |" * 9]
        lines += [f"| {r['net']} | {'-'.join(map(str, r['widths']))} | {r['folding']} "
                  f"| {r['pipeline']} | {r['seed']} | {r['status']} "
                  f"| {r.get('mismatches', '-')} | {r.get('first_mismatch_layer') or '-'} "
                  f"| `{r['command']}` |" for r in bad]
        errors = [r for r in bad if r["error"]]
        lines += ["", *(f"- net {r['net']} {r['folding']}: {r['error']}" for r in errors)]
    return "\n".join(lines) + "\n"


def run(args):
    import shutil
    import time
    from pathlib import Path

    from ..dask_pool import SchedulerError, open_client
    from ..fileio import check_output_dir, make_output_dir, write_text_atomic
    from .campaign import plan_campaign, run_campaign
    from .tools import check_simulator

    sizes, pipelines, fault = _check(args)
    check_simulator(args.sim)
    made = not Path(args.out).exists()
    out = make_output_dir(check_output_dir(args.out, "--out"), "--out")
    started = time.monotonic()
    try:
        plan = plan_campaign(out, networks=args.random, sizes=sizes, foldings=args.foldings,
                             pipelines=pipelines, stall=args.stall,
                             stall_seeds=args.stall_seeds, images=args.images, seed=args.seed,
                             slower_after=fault[1] if fault and fault[0] == "drop_ready"
                             else None, kind=_kind(args))
        records = run_campaign(out, lambda: open_client(args.scheduler, args.workers), plan,
                               simulator=args.sim, images=args.images, fault=args.fault,
                               timeout=args.timeout)
    except SchedulerError:
        # Nothing ran (the scheduler is reached only when some check is not cached): a
        # folder this run made holds only the planned networks.
        if made:
            shutil.rmtree(out, ignore_errors=True)
        raise
    seconds = time.monotonic() - started
    write_text_atomic(out / "results.md", _markdown(records, args, seconds))
    bad = [r for r in records if r["status"] != "passed"]
    for r in bad:
        why = (f"{r['mismatches']} mismatches, first differing layer "
               f"{r.get('first_mismatch_layer')}" if r["status"] == "mismatch"
               else f"{r['status']}: {r['error']}")
        print(f"FAIL net {r['net']} ({'-'.join(map(str, r['widths']))}) {r['folding']} "
              f"p{r['pipeline']} s{r['seed']}: {why}\n  repeat with: {r['command']}")
    print(f"verify-campaign: {len(records)} verifications, {len(records) - len(bad)} passed, "
          f"{len(bad)} did not; {seconds:.1f} s; wrote {out / 'results.json'}, "
          f"{out / 'results.md'}")
    if args.fault:
        # A fault is seen only where the verification ran and mismatched; a design that
        # could not be built or timed out proves nothing about the checker.
        seen = sum(r["status"] == "mismatch" for r in records)
        passed = [r for r in records if r["status"] == "passed"]
        unrun = len(records) - seen - len(passed)
        print(f"with --fault {args.fault}: {seen} of {len(records)} designs failed as expected"
              + (f"; {unrun} did not run to the end (failed or timed out)" if unrun else "")
              + (f"; passed despite the fault: {', '.join(r['command'] for r in passed)}"
                 if passed else ""))
        return 0 if seen == len(records) else 1
    return 1 if bad else 0
