"""Show why the binarized network works: the angle between each neuron's latent weights and
their binarized version (about 37 degrees for Gaussian weights, while random vectors are about
90 degrees apart) and how well dot products survive binarization on the test split
(Anderson & Berg, "The High-Dimensional Geometry of Binary Neural Networks", 2017).

Reads RUN_DIR/checkpoint.pt, which 'bnnflow train' saves beside the .bnn artifact; prints a
table and writes a JSON report and PNG plots.
"""

import json
import math
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    from .geometry import QUANTIZERS

    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="training run directory holding checkpoint.pt (or the checkpoint "
                             "itself, or the model.bnn beside it)")
    parser.add_argument("--report", metavar="R.json", default=None,
                        help="JSON report to write (default: RUN_DIR/geometry.json)")
    parser.add_argument("--plots", metavar="DIR", default=None,
                        help="directory for the PNG plots (default: RUN_DIR/geometry)")
    parser.add_argument("--quantizer", default=None, choices=sorted(QUANTIZERS),
                        help="quantizer to compare the latent weights with (default: the one "
                             "the network was trained with, binary or ternary)")
    parser.add_argument("--max-samples", type=int, default=2000, metavar="N",
                        help="test images used for the dot products (default: 2000)")


def _clean(value):
    """Replace non-finite floats by None so the report is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def run(args):
    from rich.console import Console

    from ..errors import BnnflowError
    from ..fileio import check_output_dir, check_output_file, write_text_atomic
    from . import geometry
    from .checkpoint import checkpoint_path, load_checkpoint
    from .geometry_plots import summary_table

    if args.max_samples < 2:
        raise BnnflowError(f"--max-samples must be at least 2, not {args.max_samples}")
    run_dir = Path(args.run_dir)
    checkpoint = checkpoint_path(run_dir)
    if not checkpoint.is_file():
        load_checkpoint(run_dir)  # a missing input comes first: its one-line error
    base = checkpoint.parent
    report_path = Path(args.report) if args.report else base / "geometry.json"
    plots_dir = Path(args.plots) if args.plots else base / "geometry"
    check_output_file(report_path, "--report")
    check_output_dir(plots_dir, "--plots")
    report = geometry.analyze(run_dir, quantizer=args.quantizer, max_samples=args.max_samples,
                              plots_dir=plots_dir)
    write_text_atomic(report_path, json.dumps(_clean(report), indent=2, allow_nan=False) + "\n")
    console = Console()
    console.print(summary_table(report))
    console.print("angle: each neuron's latent weights vs their quantized version; random: "
                  "Gaussian vectors of the same dimension; dot r: correlation of the test "
                  "inputs' dot products with latent vs quantized weights (pooled; neuron r: "
                  "mean per neuron); act: continuous vs binarized inputs of the layer.")
    console.print(f"report: {report_path}")
    for path in report["plots"].values():
        console.print(f"plot: {path}")
    return 0
