"""Build a bitstream with a UART inference top for a board (iCEBreaker, ULX3S, ...).

Clock (--clock): "board" uses the board's oscillator directly; MHZ asks a PLL for the highest
frequency it can make up to MHZ; "auto" (default) places and routes on the board clock, then,
if the design's Fmax is at least 1.25x that clock, builds again with a PLL at up to 0.9x the
Fmax (stepping down up to twice if nextpnr misses it, else keeping the board clock). Folding
(--fold): as for bnnflow verilog, plus 'fit': the fastest folding that the board's FPGA really
places (the estimate's choice first, then slower ones; each attempt is printed and listed in
build.json). Protocol, 8N1 at --baud: the host sends ceil(K0/8) bytes, the image's input bits
packed LSB first (bit j = bit j%8 of byte j//8); the board answers with one byte, the class
index, then (unless --class-only) the popcount of every class, ceil(bits/8) bytes each, little-
endian. LEDs: one toggles per reply, one shows activity, one latches receive errors (as many as
the board has). Writes DIR/top.bin (iCE40) or DIR/top.bit (ECP5), DIR/build.json and the tool
logs; nothing is written if a step fails.
"""

from ..hw.cli_options import add_design_arguments
from .cli_synth import minutes

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    from .platforms import BOARDS

    add_design_arguments(parser)
    parser.add_argument("--board", required=True, metavar="|".join(BOARDS),
                        help="board to build for")
    parser.add_argument("--clock", default="auto", metavar="auto|board|MHZ",
                        help="clock source: auto (default), the board oscillator, or a PLL "
                             "frequency in MHz (the highest achievable one not above it)")
    parser.add_argument("--baud", type=int, default=115200, help="UART baud rate (115200)")
    parser.add_argument("--class-only", action="store_true",
                        help="reply with the class byte only (no popcounts)")
    parser.add_argument("-o", "--output", metavar="DIR", required=True,
                        help="directory for the bitstream, build.json and logs")
    parser.add_argument("--tool-timeout", metavar="MINUTES", type=minutes, default=None,
                        help="stop a place-and-route attempt (Yosys, nextpnr, packer) after "
                             "MINUTES and report it (default: no limit; nextpnr's router can "
                             "stall for a long time on a congested design)")


def run(args):
    import sys

    from ..errors import BnnflowError
    from ..fileio import check_output_dir
    from ..model import artifact
    from .build import build, parse_clock
    from .platforms import get_board

    get_board(args.board)
    clock = parse_clock(args.clock)
    if args.pipeline < 0:
        raise BnnflowError(f"--pipeline must be a non-negative integer, not {args.pipeline}")
    if args.baud <= 0:
        raise BnnflowError(f"--baud must be a positive UART rate, such as 115200, not "
                           f"{args.baud}")
    model = artifact.load(args.model)
    check_output_dir(args.output, "-o")
    info = build(model, args.board, args.output, args.fold, ii=args.ii, pipeline=args.pipeline,
                 baud=args.baud, popcounts=not args.class_only, clock=clock,
                 progress=lambda msg: print(f"... {msg}", file=sys.stderr, flush=True),
                 tool_timeout=None if args.tool_timeout is None else 60 * args.tool_timeout)
    proto = info["protocol"]
    res = info["resources"]
    if args.fold == "fit":
        for attempt in info["attempts"]:
            print(f"fit: {attempt['folding']} (II {attempt['ii']}) "
                  + ("placed" if attempt["placed"] else "did not place"))
    print(f"wrote {info['bitstream']} for {info['board']} ({info['target']}): folding "
          f"{info['folding']}, II {info['ii']} cycles, {res['lut4']} LUT4, {res['ff']} FF, "
          f"{res['bram']} BRAM, Fmax {info['fmax_mhz']} MHz at a {info['clock_mhz']:g} MHz "
          f"clock ({'PLL' if info['pll'] else 'board oscillator'}): "
          f"{info['images_per_second']:,} images/s")
    print(info["clock"]["summary"])
    print(f"protocol: {proto['framing']} at {info['baud']} baud; send {proto['request_bytes']} "
          f"bytes per image, receive {proto['reply_bytes']} ({proto['reply']}); the link "
          f"carries at most {info['link_images_per_second']:,} images/s")
    print(f"verify it: bnnflow verify {args.model} --board {info['board']} --fold "
          f"{info['folding']} --pipeline {info['pipeline']} --sim verilator-direct "
          f"--images all --stall 0.2")
    print(f"run it: bnnflow run-board {args.model} --port PORT"
          + (" --class-only" if args.class_only else "")
          + (f" --baud {args.baud}" if args.baud != 115200 else "")
          + f"  (PORT: {info['port_hint']})")
    return 0
