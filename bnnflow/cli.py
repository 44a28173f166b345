"""The ``bnnflow`` command line: one console script with subcommands.

Each subcommand lives beside the code it drives, in a module with ``add_arguments(parser)``
and ``run(args) -> int``; this file only lists them. Modules are imported lazily so that
``bnnflow --help`` and ``bnnflow inspect`` load neither torch nor Amaranth.
"""

import argparse
import importlib
import importlib.util
import os
import sys

from . import __version__
from .errors import BnnflowError
from .procs import interrupt_on_sigterm

__all__ = ["main", "COMMANDS"]

#: name -> (module, one-line help). Commands whose module is not present are not offered.
COMMANDS = {
    "demo": ("bnnflow.demo", "run every stage of the flow on the default model (tfc, digits)"),
    "train": ("bnnflow.model.cli_train", "train a binarized MLP or CNN and export it to a .bnn "
                                         "file"),
    "inspect": ("bnnflow.model.cli_inspect", "show a .bnn model: layers, thresholds, "
                                             "provenance, checksum"),
    "verilog": ("bnnflow.hw.cli_verilog", "generate Verilog for a .bnn model"),
    "verify": ("bnnflow.sim.cli_verify", "simulate the generated hardware against the golden "
                                         "model"),
    "synth": ("bnnflow.boards.cli_synth", "synthesize out of context with Yosys and nextpnr"),
    "build": ("bnnflow.boards.cli_build", "build a bitstream with a UART top for a board"),
    "flash": ("bnnflow.boards.cli_flash", "program a board with a 'bnnflow build' bitstream"),
    "run-board": ("bnnflow.boards.cli_run_board", "classify test images on a board (or 'sim')"),
    "geometry": ("bnnflow.model.cli_geometry", "angles and dot-product correlations of the "
                                               "binarized weights"),
    "prove": ("bnnflow.sim.cli_prove", "prove stream properties of the hardware units formally "
                                       "(bounded model check and k-induction)"),
    "explore": ("bnnflow.boards.cli_explore", "sweep foldings x targets x seeds on Dask and "
                                              "report the Pareto front"),
    "verify-campaign": ("bnnflow.sim.cli_campaign", "verify many random networks x foldings "
                                                    "x stalls on Dask"),
    "import": ("bnnflow.model.cli_import", "import a Brevitas or FINN QONNX model exactly as a "
                                           ".bnn file"),
    "export-qonnx": ("bnnflow.model.cli_export_qonnx", "write a .bnn model as a QONNX graph"),
}


def _available():
    for name, (module, help_) in COMMANDS.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            yield name, module, help_


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, as every other bnnflow error (exit status 2), naming where the
    options are listed instead of printing the whole usage block."""

    def error(self, message):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = _Parser(
        prog="bnnflow",
        description="Binarized neural networks from PyTorch to FPGA gateware, proven bit-exact.")
    parser.add_argument("--version", action="version", version=f"bnnflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module, help_ in _available():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_, description=(mod.__doc__ or help_).strip())
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _parser=p)
    return parser


def main(argv=None):
    """Entry point of the ``bnnflow`` script; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:      # the command's own parser, so that the line names it and its --help
        args._parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        with interrupt_on_sigterm():    # `kill PID` cleans up as Ctrl-C does
            return int(args._run(args) or 0)
    except BnnflowError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout left (`| head`): stop quietly, as other tools do, and keep
        # Python from failing again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
