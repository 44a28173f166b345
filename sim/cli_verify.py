"""Simulate the generated hardware of a model and compare every output with the golden model.

Streams test images of the model's data set (or a .npy of input bits) through the hardware that
'bnnflow verilog' would generate, in Amaranth's simulator, Verilator or Icarus Verilog, with
optional random input gaps and output back-pressure, and checks each image's class and final
popcounts bit for bit. On a mismatch the first differing image is run again with per-layer
debug taps to name the first layer whose output differs. With --reset-mid-stream the design is
reset once in the middle of the stream, with images inside it, and the images whose outputs had
not arrived are sent again: every output must still match, and none may be left over from
before the reset. Exit status: 0 when everything matches (and the measured II and latency
equal the sidecar's), 1 on any mismatch, 2 on bad input or a missing simulator.

With --target T (or --board B) the design verified is the one 'bnnflow synth --target T' and
'bnnflow build --board B' make (on ECP5 with a register after each weight ROM); the report's
target and rom_register say which. With --netlist ice40|ecp5 the simulators run Yosys' mapped
netlist of that design (synth_ice40 / synth_ecp5, the cell models of the YoWASP Yosys) instead
of the generated RTL: what reaches the board, block RAM contents and register initial values
included (report key netlist). --fold fit verifies the folding that 'synth --fold fit' places
on the device of --target or --board (with --netlist alone: ice40-up5k or ecp5-85k); it runs
that placement first.

Report keys (--report R.json): simulator, images, mismatches, timing_mismatches,
first_mismatch (null or {image, layer, layer_index, expected, actual, layer_detail}), cycles,
ii_measured, ii_expected, latency_measured, latency_expected, timing_ok, timing_note,
wall_seconds, sim_seconds, build_seconds, cycles_per_second, passed, and the run's settings
(folding, pipeline, rom_register, target, netlist, stall, seed, ...);
reset_mid_stream (null without --reset-mid-stream, else {after, applied, edge,
images_in_flight, input_waiting, restart_image, stale_outputs, stale, min_latency, note}).
"""

__all__ = ["add_arguments", "run", "print_report"]


def _images(text):
    import argparse

    if text == "all":
        return "all"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer or 'all', not {text!r}")
    return value


def _positive(text):
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def _probability(text):
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1), not {text!r}")
    return value


def add_arguments(parser):
    from ..hw.cli_options import add_design_arguments, add_rom_register_argument
    from .tools import SIMULATORS

    add_design_arguments(parser)
    add_rom_register_argument(parser)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--target", default=None, metavar="ice40-up5k|ice40-hx8k|ecp5-25k|ecp5-85k",
                       help="verify the design that synth and build make for this device (its "
                            "weight-ROM register: on for ECP5)")
    where.add_argument("--board", default=None, metavar="BOARD",
                       help="the same for the FPGA of this board (icebreaker, ulx3s, ...)")
    parser.add_argument("--netlist", default=None, choices=("ice40", "ecp5"),
                        help="simulate Yosys' mapped netlist for this family (synth_ice40 / "
                             "synth_ecp5 with the weight-ROM register synth uses, and the cell "
                             "models of the YoWASP Yosys) instead of the generated RTL; not with "
                             "--sim amaranth")
    parser.add_argument("--sim", required=True, choices=SIMULATORS,
                        help="simulator to run the design in (verilator-direct: the Verilator "
                             "model driven from C++, fastest)")
    parser.add_argument("--inputs", default=None, metavar="FILE.npy",
                        help="encoded inputs (B, K0) instead of the data set's test split: "
                             "bits 0/1, or levels 0..2**n-1 for n-bit inputs (--input-bits 8)")
    parser.add_argument("--images", type=_images, default=None, metavar="N|all",
                        help="number of images (default: 100 for amaranth and icarus, all "
                             "for verilator and verilator-direct)")
    parser.add_argument("--stall", type=_probability, default=0.0, metavar="P",
                        help="probability of an input gap and of output back-pressure per "
                             "cycle (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the stalls (default 0)")
    parser.add_argument("--reset-mid-stream", action="store_true",
                        help="once --reset-after images have gone in, hold o.ready low until "
                             "an output waits and the next image is offered but not yet taken, "
                             "assert rst for one cycle, then send again every image whose "
                             "output had not arrived; all outputs must match and none may be "
                             "stale (default: no reset)")
    parser.add_argument("--reset-after", type=_positive, default=None, metavar="N",
                        help="with --reset-mid-stream (implied): images transferred before the "
                             "reset, 1..images-1 (default: half of the images)")
    parser.add_argument("--vcd", default=None, metavar="FILE", help="write a VCD waveform")
    parser.add_argument("--report", default=None, metavar="R.json",
                        help="write the report as JSON")
    parser.add_argument("--build-dir", default=None, metavar="DIR",
                        help="cache of Verilator/Icarus builds (default: $BNNFLOW_SIM_BUILD "
                             "or a directory under the system temp dir)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    debug = parser.add_argument_group(
        "fault injection (tests and debugging: the run is expected to fail)")
    debug.add_argument("--hardware-model", default=None, metavar="OTHER.bnn",
                       help="generate the hardware from another model with the same layer "
                            "sizes (e.g. one weight bit flipped) while the golden model "
                            "stays MODEL")
    debug.add_argument("--fault", default=None, metavar="drop_ready:J|swap_output:A,B",
                       help="build BnnTop with a fault: drop_ready:J, the stream after layer "
                            "J ignores its consumer's ready; swap_output:A,B, bits A and B of "
                            "the output payload exchanged")


def _fmt(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_report(rep, console=None):
    """Print a report dict as a rich table."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"bnnflow verify ({rep['simulator']})", show_header=True)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("expected", justify="right")
    ok = "[green]PASS[/green]" if rep["passed"] else "[red]FAIL[/red]"
    table.add_row("result", ok, "")
    table.add_row("images", _fmt(rep["images"]), "")
    table.add_row("mismatches", _fmt(rep["mismatches"]), "0")
    table.add_row("timing-phase mismatches", _fmt(rep["timing_mismatches"]), "0")
    table.add_row("II (cycles)", _fmt(rep["ii_measured"]), _fmt(rep["ii_expected"]))
    table.add_row("latency (cycles)", _fmt(rep["latency_measured"]),
                  _fmt(rep["latency_expected"]))
    table.add_row("cycles simulated", _fmt(rep["cycles"]), "")
    table.add_row("build / simulate / wall (s)",
                  f"{rep['build_seconds']:.1f} / {rep['sim_seconds']:.1f} / "
                  f"{rep['wall_seconds']:.1f}", "")
    table.add_row("cycles per second", _fmt(rep["cycles_per_second"]), "")
    table.add_row("stall / seed", f"{rep['stall']} / {rep['seed']}", "")
    design = (f"{rep['target']}: " if rep.get("target") else "") + (
        f"Yosys synth_{rep['netlist']} netlist, " if rep.get("netlist") else "RTL, ") + (
        "weight-ROM register" if rep.get("rom_register") else "no weight-ROM register")
    table.add_row("design verified", design, "")
    reset = rep.get("reset_mid_stream")
    if reset:
        where = (f"edge {reset['edge']}, {reset['images_in_flight']} in flight, resent from "
                 f"image {reset['restart_image']}" if reset["applied"] else "not applied")
        table.add_row(f"reset after {reset['after']} images", where, "applied")
        table.add_row("stale outputs after the reset", _fmt(reset["stale_outputs"]), "0")
    console.print(table)
    first = rep.get("first_mismatch")
    if first:
        console.print(f"first mismatch: image {first['image']}, first differing layer "
                      f"{first['layer']} (index {first['layer_index']}); expected "
                      f"{first['expected']}, got {first['actual']}")
        detail = first.get("layer_detail") or {}
        if "pixel" in detail:
            row, col = detail["pixel"]
            console.print(f"first differing output of {first['layer']}: pixel (row {row}, "
                          f"column {col}), channel {detail['channel']}")
    console.print(f"timing: {rep['timing_note']}", style="dim")
    if reset:
        console.print(f"reset: {reset['note']}", style="dim")


def _fault(text):
    from ..errors import BnnflowError

    if text is None:
        return None
    kind, _, args = text.partition(":")
    values = args.split(",")
    if all(v.isdigit() for v in values):
        if kind == "drop_ready" and len(values) == 1:
            return ("drop_ready", int(values[0]))
        if kind == "swap_output" and len(values) == 2:
            return ("swap_output", int(values[0]), int(values[1]))
    raise BnnflowError(f"--fault must be drop_ready:J with J a layer index or swap_output:A,B "
                       f"with A and B output bits, not {text!r}")


#: The device ``--fold fit`` places on for ``--netlist F`` without ``--target`` or ``--board``.
FIT_DEVICE = {"ice40": "ice40-up5k", "ecp5": "ecp5-85k"}


def _fit_folding(model, args, target):
    """``--fold fit``: the folding ``synth --fold fit`` places on the device, as text."""
    import sys

    from ..boards.synth import synthesize
    from ..errors import BnnflowError

    if args.ii is not None:
        raise BnnflowError("--ii does not apply with --fold fit (it chooses the II)")
    if target is None and args.netlist is not None:
        target = FIT_DEVICE[args.netlist]
    if target is None:
        raise BnnflowError("--fold fit needs the device to place on: --target, --board or "
                           "--netlist")
    report = synthesize(model, target, "fit", pipeline=args.pipeline,
                        progress=lambda msg: print(f"... {msg}", file=sys.stderr, flush=True))
    print(f"fit: {report['folding']} (II {report['ii']}) places on the {target}")
    return report["folding"]


def _design_for(args):
    """``(target, rom_register)``: with ``--target`` or ``--board``, the options synth and build
    use for that device (the command line may reach the boards layer; sim/ does not)."""
    if args.target is None and args.board is None:
        return None, args.rom_register
    from ..boards.estimate import ROM_REGISTER
    from ..boards.platforms import get_board
    from ..boards.targets import get_target

    name = args.target if args.target is not None else get_board(args.board).target
    return name, args.rom_register or ROM_REGISTER[get_target(name).family]


def run(args):
    from pathlib import Path

    from ..errors import BnnflowError
    from ..fileio import check_output_dir, check_output_file
    from ..model.artifact import load
    from .verify import DEFAULT_IMAGES, expected_inputs, run_verify

    model = load(args.model)
    hardware_model = load(args.hardware_model) if args.hardware_model else None
    inputs = [p for p in (args.model, args.hardware_model, args.inputs) if p is not None]
    for path, option in ((args.report, "--report"), (args.vcd, "--vcd")):
        if path is not None:
            check_output_file(path, option, inputs=inputs)
    if args.build_dir is not None:
        check_output_dir(args.build_dir, "--build-dir")
    fault = _fault(args.fault)
    if fault is not None and fault[0] == "drop_ready" and fault[1] >= len(model.layers):
        raise BnnflowError(f"--fault drop_ready:J needs a layer index J in "
                           f"0..{len(model.layers) - 1} (the model has {len(model.layers)} "
                           f"layers), not {fault[1]}")
    if args.images is None:
        images = DEFAULT_IMAGES[args.sim]
    else:
        images = None if args.images == "all" else args.images
    if args.inputs is not None and not Path(args.inputs).is_file():
        what = "a folder, not a file" if Path(args.inputs).is_dir() else "no such input file"
        raise BnnflowError(f"{args.inputs}: {what} (--inputs takes {expected_inputs(model)})")
    if args.pipeline < 0:
        raise BnnflowError(f"--pipeline must be a non-negative integer, not {args.pipeline}")
    target, rom_register = _design_for(args)
    fold = args.fold
    if fold == "fit":
        fold = _fit_folding(model, args, target)
    if args.netlist is not None:
        from ..boards.estimate import ROM_REGISTER
        from ..boards.targets import get_target

        if target is None:
            rom_register = args.rom_register or ROM_REGISTER[args.netlist]
        elif get_target(target).family != args.netlist:
            raise BnnflowError(f"--netlist {args.netlist} does not match the "
                               f"{get_target(target).family} device {target}; give "
                               f"--netlist {get_target(target).family}")
    rep = run_verify(model, simulator=args.sim, fold=fold, ii=args.ii,
                     pipeline=args.pipeline, inputs=args.inputs, images=images,
                     stall=args.stall, seed=args.seed, vcd=args.vcd, report=args.report,
                     build_root=args.build_dir, hardware_model=hardware_model, fault=fault,
                     show_progress=not args.quiet, rom_register=rom_register,
                     reset_mid_stream=args.reset_mid_stream or args.reset_after is not None,
                     reset_after=args.reset_after, target=target, netlist=args.netlist)
    if isinstance(images, int) and rep["images"] < images:
        print(f"note: --images {images} asked for more than the stimulus holds; all "
              f"{rep['images']} were verified")
    print_report(rep)
    return 0 if rep["passed"] else 1
