"""Run every stage of the flow on the default model: tfc on the digits data set.

Stages, in order (each joins the demo when its capability lands): train and export the
default network, show the geometry of its binarized weights, generate its Verilog, and verify
the generated hardware against the golden model over the whole test split. The run ends with a
summary table; every output lands in ``--out`` (default ``demo-out/``).
"""

import json
import time
from pathlib import Path

from .errors import BnnflowError
from .fileio import write_text_atomic

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("--out", default="demo-out", metavar="DIR",
                        help="directory for every output (default: demo-out)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: the preset's default)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    parser.add_argument("--sim", default="verilator",
                        choices=["verilator", "icarus", "amaranth"],
                        help="simulator for the verification stage (default: verilator)")


class _Demo:
    def __init__(self, out):
        from rich.console import Console

        self.console = Console()
        self.out = Path(out)
        self.summary = {}

    def stage(self, title):
        self.console.rule(f"[bold]{title}")
        return time.perf_counter()

    def done(self, start, **figures):
        seconds = time.perf_counter() - start
        self.console.print(f"[green]done[/green] in {seconds:.1f} s")
        return seconds


def run(args):
    demo = _Demo(args.out)
    demo.out.mkdir(parents=True, exist_ok=True)
    console = demo.console
    summary = {}

    # 1. Train and export (issue 3).
    t = demo.stage("1. train tfc on digits and export model.bnn")
    from .model import train

    result = train.train_and_export(
        train.TrainConfig(preset="tfc", dataset="digits", epochs=args.epochs, seed=args.seed),
        out_dir=demo.out / "train")
    metrics = result.metrics
    if metrics["agreement"] != 1.0:
        raise BnnflowError(f"golden model disagrees with PyTorch on "
                           f"{1 - metrics['agreement']:.2%} of the test images")
    summary["test_accuracy"] = metrics["test_accuracy"]
    summary["golden_accuracy"] = metrics["golden_accuracy"]
    summary["train_seconds"] = demo.done(t)
    model_path = result.model_path

    # 2. Geometry of the binarized weights (issue 8).
    t = demo.stage("2. geometry of the binarized weights")
    from .model import geometry

    report = geometry.analyze(model_path.parent)
    console.print(geometry.summary_table(report))
    demo.done(t)

    # 3. Generate the hardware (issue 4).
    t = demo.stage("3. generate Verilog")
    from .hw import verilog
    from .model import artifact

    model = artifact.load(model_path)
    sidecar = verilog.write_verilog(model, demo.out / "hw" / "bnnflow_top.v")
    summary["ii"] = sidecar["ii"]
    summary["latency"] = sidecar["latency"]
    console.print(f"wrote {demo.out / 'hw' / 'bnnflow_top.v'}: II {sidecar['ii']} cycles, "
                  f"latency {sidecar['latency']} cycles")
    demo.done(t)

    # 4. Verify the hardware against the golden model (issue 5).
    t = demo.stage(f"4. verify the hardware on {args.sim} over the whole test split")
    from .sim import verify

    vreport = verify.run_verify(model, simulator=args.sim, images="all",
                                report=demo.out / "verify.json")
    summary["verify_images"] = vreport["images"]
    summary["verify_mismatches"] = vreport["mismatches"]
    summary["ii_measured"] = vreport["ii_measured"]
    summary["latency_measured"] = vreport["latency_measured"]
    demo.done(t)

    _print_summary(console, summary)
    write_text_atomic(demo.out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return 0 if summary.get("verify_mismatches", 0) == 0 else 1


def _print_summary(console, summary):
    from rich.table import Table

    table = Table(title="bnnflow demo: tfc on digits")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
