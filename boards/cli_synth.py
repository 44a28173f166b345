"""Synthesize a .bnn model out of context with Yosys and nextpnr and report its resources.

The network is wrapped in a thin serial I/O fixture (input bits shifted into a K0-bit register,
output shifted out of a registered W_out-bit register; it adds 2 K0 + W_out + 2 flip-flops,
counting the network's input register) so that wide streams fit the package. The report
gives LUT4, flip-flops, carry cells, block RAM, utilization, Fmax from nextpnr (placed with
--timing-allow-fail: a missed clock is reported, not an error), images per second = Fmax /
II and the time of each tool step. Tools: the YoWASP packages, or the programs named by YOSYS,
NEXTPNR_ICE40, NEXTPNR_ECP5.
"""

import argparse
import json
import sys

from ..hw.cli_options import add_design_arguments

__all__ = ["add_arguments", "run", "format_report"]


def add_arguments(parser):
    from .targets import TARGETS

    add_design_arguments(parser)
    parser.add_argument("--target", required=True, metavar="|".join(TARGETS),
                        help="device to synthesize for")
    parser.add_argument("--freq", metavar="MHZ", type=float, default=None,
                        help="clock constraint for nextpnr (default: the target's)")
    parser.add_argument("--report", metavar="R.json", default=None,
                        help="write the report as JSON")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="keep the tool logs and nextpnr's report in DIR")
    parser.add_argument("--pnr-timeout", metavar="MINUTES", type=minutes, default=None,
                        help="stop nextpnr after MINUTES and report it (default: no limit; "
                             "its router can stall for a long time on a congested design)")


def minutes(text):
    """argparse type of a positive number of minutes (--pnr-timeout, build's --tool-timeout)."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of minutes, not {text!r}")
    return value


def format_report(report):
    """The report as aligned text lines."""
    util = report["utilization"]
    ips = report["images_per_second"]
    rows = [
        ("target", report["target"]),
        ("folding", f"{report['folding']} (pipeline {report['pipeline']})"),
        ("LUT4", f"{report['lut4']}  (logic cells {report['logic_cells']}, "
                 f"{util['logic']}% of {report['capacity']['logic_cells']})"),
        ("flip-flops", f"{report['ff']}  ({util['ff']}%)"),
        ("carry cells", str(report["carry"])),
        ("block RAM", f"{report['bram']} of {report['capacity']['bram']}"
                      + (f"  (SPRAM {report['spram']})" if report["spram"] else "")),
        ("I/O", f"{util['io']}%"),
        ("Fmax", f"{report['fmax_mhz']} MHz (constraint {report['freq_constraint_mhz']:g} MHz)"),
        ("II", f"{report['ii']} cycles, latency {report['latency']} cycles"),
        ("images/s", f"{ips:,.0f}" if ips else "n/a"),
        ("steps", ", ".join(f"{k} {v:.1f} s" for k, v in report["step_seconds"].items())),
    ]
    width = max(len(k) for k, _ in rows)
    return [f"{k:<{width}}  {v}" for k, v in rows]


def run(args):
    from ..errors import BnnflowError
    from ..fileio import check_output_dir, check_output_file, write_text_atomic
    from ..model import artifact
    from .synth import synthesize, timing_line
    from .targets import get_target

    get_target(args.target)
    if args.pipeline < 0:
        raise BnnflowError(f"--pipeline must be a non-negative integer, not {args.pipeline}")
    if args.freq is not None and not 0 < args.freq < 10_000:     # nan too
        raise BnnflowError(f"--freq must be a clock in MHz above 0, such as 48, not "
                           f"{args.freq:g}")
    model = artifact.load(args.model)
    if args.report is not None:
        check_output_file(args.report, "--report", inputs=[args.model])
    if args.out is not None:
        check_output_dir(args.out, "--out")
    message = None
    if args.fold != "fit":
        try:
            from ..hw import verilog
            from ..hw.folding import resolve_folding

            message = verilog.large_design_message(model, resolve_folding(model, args.fold,
                                                                          args.ii))
        except ValueError as e:
            raise BnnflowError(f"bad --fold: {e}") from None
    if message:
        print(f"warning: {message}", file=sys.stderr, flush=True)
    report = synthesize(model, args.target, args.fold, ii=args.ii, pipeline=args.pipeline,
                        out_dir=args.out, freq_mhz=args.freq,
                        pnr_timeout=None if args.pnr_timeout is None else 60 * args.pnr_timeout,
                        progress=lambda msg: print(f"... {msg}", file=sys.stderr, flush=True))
    for attempt in report.get("attempts", []):
        print(f"fit: {attempt['folding']} (II {attempt['ii']}) "
              + ("placed" if attempt["placed"] else "did not place"))
    for line in format_report(report):
        print(line)
    print(timing_line(report))
    print(f"note: {report['wrapper']}")
    if args.report:
        write_text_atomic(args.report, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.report}")
    return 0
