"""Command-line options that choose a design, shared by every command that generates one.

``bnnflow verilog``, ``verify``, ``synth`` and ``build`` take the model and the same design
options, so that one spelling produces the same hardware everywhere.
"""

__all__ = ["add_design_arguments", "add_rom_register_argument"]


def add_design_arguments(parser):
    """Add ``MODEL``, ``--fold``, ``--ii`` and ``--pipeline`` to ``parser``."""
    parser.add_argument("model", metavar="MODEL", help="path of a .bnn file")
    parser.add_argument("--fold", metavar="fit|auto|FILE|PExSIMD,...", default=None,
                        help="per-layer folding (default: fully parallel); fit: the fastest "
                             "folding that the target really places and routes (synth, build, "
                             "verilog --target)")
    parser.add_argument("--ii", metavar="CYCLES", type=int, default=None,
                        help="target initiation interval for --fold auto")
    parser.add_argument("--pipeline", metavar="STAGES", type=int, default=0,
                        help="register stages in each popcount adder tree (default 0)")


def add_rom_register_argument(parser):
    """Add ``--rom-register`` (commands that generate a design for no particular target)."""
    parser.add_argument("--rom-register", action="store_true",
                        help="register each weight ROM's output, as ECP5 syntheses and "
                             "builds do (same results, II and latency; default off, as for "
                             "iCE40)")
