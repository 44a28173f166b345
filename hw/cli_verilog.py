"""Generate Verilog for a .bnn model: OUT.v (module bnnflow_top) and the sidecar OUT.json.

Folding (--fold): none = fully parallel; 'auto' with --ii CYCLES = the cheapest PE/SIMD per
layer that meets the target initiation interval; 'fit' with --target T = the fastest folding
that T really places and routes (Yosys and nextpnr run on each candidate, as bnnflow synth
--fold fit does); a JSON file {"layers": [{"pe": P, "simd": S}, ...]}; or PExSIMD per layer,
e.g. '16x32,8x64,10x64'. With --target the weight-ROM register follows the target, as synth and
build use it. The same inputs give the same bytes.
"""

import sys

from .cli_options import add_design_arguments, add_rom_register_argument

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    add_design_arguments(parser)
    add_rom_register_argument(parser)
    parser.add_argument("--target", default=None, metavar="ice40-up5k|ice40-hx8k|ecp5-25k|ecp5-85k",
                        help="device the design is for: needed by --fold fit; sets the ROM "
                             "register as synth and build do")
    parser.add_argument("--name", default="bnnflow_top", help="Verilog module name")
    parser.add_argument("--debug-taps", action="store_true",
                        help="add per-layer tap_<j>_valid/tap_<j>_data outputs")
    parser.add_argument("-o", "--output", metavar="OUT.v", required=True,
                        help="Verilog file to write; the sidecar goes to OUT.json")


def run(args):
    from ..errors import BnnflowError
    from ..fileio import check_output_file
    from ..model import artifact
    from . import verilog
    from .folding import resolve_folding

    if not str(args.output).endswith(".v"):
        raise BnnflowError(f"output must end in .v, not {args.output!r}")
    model = artifact.load(args.model)
    check_output_file(args.output, "-o", inputs=[args.model])
    check_output_file(verilog.sidecar_path(args.output), "-o", inputs=[args.model])
    if args.pipeline < 0:
        raise BnnflowError(f"--pipeline must be a non-negative integer, not {args.pipeline}")
    rom_register = args.rom_register
    if args.target is not None:
        # The CLI is the one place in hw/ that reaches the boards layer: --target means "as
        # synth and build make it".
        from ..boards.estimate import ROM_REGISTER
        from ..boards.targets import get_target

        rom_register = rom_register or ROM_REGISTER[get_target(args.target).family]
    if args.fold == "fit":
        folding = _fit(model, args)
    else:
        try:
            folding = resolve_folding(model, args.fold, args.ii)
        except ValueError as e:
            raise BnnflowError(f"bad --fold: {e}") from None
    message = verilog.large_design_message(model, folding)
    if message:
        print(f"warning: {message}", file=sys.stderr, flush=True)
    try:
        sidecar = verilog.write_verilog(model, args.output, folding, args.pipeline,
                                        name=args.name, debug_taps=args.debug_taps,
                                        warn_large=False, rom_register=rom_register)
    except ValueError as e:
        raise BnnflowError(str(e)) from None
    fold = sidecar["folding"]
    print(f"wrote {args.output} and {verilog.sidecar_path(args.output)}: folding {fold}, "
          f"II {sidecar['ii']} cycles, latency {sidecar['latency']} cycles")
    windows = [(entry["name"], entry["window"]) for entry in sidecar["layers"]
               if entry["kind"].endswith("_conv2d")]
    if windows:
        # Which conv layers hold their windows in registers: those cost ~2 K flip-flops.
        read_as = {"pixels": "a pixel a cycle", "rows": "a row a cycle"}
        print("conv windows: " + ", ".join(
            f"{name} {read_as.get(kind, 'in registers')}" for name, kind in windows))
    if args.fold == "auto" and args.ii is not None and sidecar["ii"] > args.ii:
        # auto_fold speeds layers up until the cycle model meets --ii; this is when it gave up.
        print(f"note: the design takes {sidecar['ii']} cycles an image, more than --ii "
              f"{args.ii}: a layer behind a pool or strided conv falls behind the bursts it "
              f"passes, and faster foldings of the layers did not catch up; a smaller --ii "
              f"folds every layer faster", file=sys.stderr)
    return 0


def _fit(model, args):
    """``--fold fit``: the folding :func:`bnnflow.boards.synth.synthesize` places."""
    from ..boards.synth import synthesize
    from ..errors import BnnflowError

    if args.target is None:
        raise BnnflowError("--fold fit needs --target (the device to place on)")
    if args.ii is not None:
        raise BnnflowError("--ii does not apply with --fold fit (it chooses the II)")
    report = synthesize(model, args.target, "fit", pipeline=args.pipeline,
                        progress=lambda msg: print(f"... {msg}", file=sys.stderr, flush=True))
    for attempt in report["attempts"]:
        print(f"fit: {attempt['folding']} (II {attempt['ii']}) "
              + ("placed" if attempt["placed"] else "did not place"))
    return report["folding"]
