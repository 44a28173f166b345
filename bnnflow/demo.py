"""Run every stage of the flow on the default model: tfc on the digits data set.

Stages, in order: train and export the default network (``train/model.bnn``), show the geometry
of its binarized weights, build the iCEBreaker bitstream with the fastest folding that really
places on its iCE40 UP5K (``bnnflow build --board icebreaker --fold fit``: Yosys and nextpnr,
the clock chosen as ``--clock auto``), generate the Verilog of that folding, and verify that
design against the golden model over the whole test split on Verilator with random stalls. The
run ends with a summary table (also written as ``summary.json``) naming the bitstream, its
folding, LUT4/FF/BRAM, the clock and images per second; every output lands in ``--out``
(default ``demo-out/``). Exit status 0 when every stage agrees with the golden model.
"""

import json
import time
from pathlib import Path

from .errors import BnnflowError
from .fileio import check_output_dir, make_output_dir, write_text_atomic

__all__ = ["add_arguments", "run"]

BOARD = "icebreaker"
TARGET = "ice40-up5k"


def add_arguments(parser):
    parser.add_argument("--out", default="demo-out", metavar="DIR",
                        help="directory for every output (default: demo-out)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: the preset's default)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    parser.add_argument("--sim", default="verilator-direct",
                        choices=["verilator-direct", "verilator", "icarus", "amaranth"],
                        help="simulator for the verification stage (default: "
                             "verilator-direct)")
    parser.add_argument("--stall", type=float, default=0.2,
                        help="probability of input gaps and output back-pressure during "
                             "verification (default: 0.2)")
    parser.add_argument("--images", default="all",
                        help="test images to verify: a number or 'all' (default: all)")
    parser.add_argument("--pipeline", type=int, default=2,
                        help="register stages in each popcount adder tree (default: 2)")
    parser.add_argument("--clock", default="auto", metavar="auto|board|MHZ",
                        help="bitstream clock: auto (default: the board clock, then a PLL "
                             "near the design's Fmax, a second build), board (the 12 MHz "
                             "oscillator, one build) or a PLL frequency in MHz")
    parser.add_argument("--no-build", "--no-synth", dest="no_build", action="store_true",
                        help="skip the bitstream build (the folding then comes from the "
                             "resource estimate alone)")


def _check(args):
    """Refuse bad options before the first stage (training takes a minute)."""
    from .boards.build import parse_clock
    from .errors import BnnflowError

    if args.epochs is not None and args.epochs < 1:
        raise BnnflowError(f"--epochs must be a positive integer, not {args.epochs}")
    if args.images != "all" and (not str(args.images).isdigit() or int(args.images) < 1):
        raise BnnflowError(f"--images must be a positive integer or 'all', not "
                           f"{args.images!r}")
    args.clock = parse_clock(args.clock)
    if not 0.0 <= args.stall < 1.0:
        raise BnnflowError(f"--stall must be a probability in [0, 1), not {args.stall:g}")
    if args.pipeline < 0:
        raise BnnflowError(f"--pipeline must be a non-negative integer, not {args.pipeline}")


def run(args):
    from rich.console import Console

    _check(args)
    out = make_output_dir(check_output_dir(args.out, "--out"), "--out")
    console = Console()
    summary = {}
    stages = []

    def stage(title):
        console.rule(f"[bold]{title}")
        return time.perf_counter()

    def done(name, start, agrees=None):
        seconds = time.perf_counter() - start
        stages.append({"stage": name, "seconds": round(seconds, 1), "agrees": agrees})
        console.print(f"[green]{name} done[/green] in {seconds:.1f} s")

    # 1. Train and export.
    t = stage("1/5 train tfc on digits and export model.bnn")
    from .model import train

    result = train.train_and_export(preset="tfc", dataset="digits", epochs=args.epochs,
                                    seed=args.seed, out=str(out / "train"))
    m = result.metrics
    console.print(f"test accuracy {m['test_accuracy']:.4f} (PyTorch eval), golden "
                  f"{m['golden_accuracy']:.4f}, agreement {m['agreement']:.4f}")
    summary.update(test_accuracy=m["test_accuracy"], golden_accuracy=m["golden_accuracy"],
                   train_seconds=round(m["train_seconds"], 1))
    done("train + export", t, agrees=m["agreement"] == 1.0)
    model_path = Path(result.paths["model"])

    # 2. Geometry of the binarized weights.
    t = stage("2/5 geometry of the binarized weights")
    from .model import geometry
    from .model.geometry_plots import summary_table

    report = geometry.analyze(model_path.parent, plots_dir=model_path.parent / "geometry")
    write_text_atomic(model_path.parent / "geometry.json", json.dumps(report, indent=2) + "\n")
    console.print(summary_table(report))
    done("geometry", t)

    from .model import artifact

    model = artifact.load(model_path)

    # 3. The bitstream, with the fastest folding that places.
    folding = _build_stage(args, model, out, console, summary, stage, done)

    # 4. The Verilog of that folding.
    t = stage(f"4/5 generate the Verilog of that folding for {TARGET}")
    from .hw import verilog
    from .hw.folding import resolve_folding

    folding = resolve_folding(model, folding)
    fold_text = ",".join(f"{f.pe}x{f.simd}" for f in folding)
    sidecar = verilog.write_verilog(model, out / "hw" / "bnnflow_top.v", folding,
                                    args.pipeline)
    console.print(f"folding {fold_text} (PExSIMD per layer): II {sidecar['ii']} cycles, "
                  f"latency {sidecar['latency']} cycles -> {out / 'hw' / 'bnnflow_top.v'}")
    summary.update(folding=fold_text, pipeline=args.pipeline, ii=sidecar["ii"],
                   latency=sidecar["latency"])
    done("verilog", t)

    # 5. Verify the hardware against the golden model.
    _verify_stage(args, model, folding, out, console, summary, m, stage, done)

    _print_summary(console, summary, stages)
    write_text_atomic(out / "summary.json",
                      json.dumps({"summary": summary, "stages": stages}, indent=2) + "\n")
    failed = [s["stage"] for s in stages if s["agrees"] is False]
    if failed:
        raise _Disagreement(f"disagreement with the golden model in: {', '.join(failed)} "
                            f"(see {out})")
    return 0


def _build_stage(args, model, out, console, summary, stage, done):
    """Stage 3: the bitstream with the fastest folding that places (or, with ``--no-build``,
    the folding the resource estimate picks); returns that folding."""
    if args.no_build:
        from .boards.fit import fit_folding

        folding, _ = fit_folding(model, TARGET, pipeline=args.pipeline)
    else:
        t = stage(f"3/5 build the {BOARD} bitstream (--fold fit: Yosys, nextpnr, clock auto)")
        from .boards.build import build

        info = build(model, BOARD, out / "build", "fit", pipeline=args.pipeline,
                     clock=args.clock, progress=console.print)
        folding = info["folding"]
        clock = "PLL" if info["pll"] else "board oscillator"
        console.print(f"bitstream {info['bitstream']}: folding {folding}, {info['lut4']} LUT4, "
                      f"{info['ff']} FF, {info['bram']} BRAM, {info['clock_mhz']:g} MHz "
                      f"({clock}; Fmax {info['fmax_mhz']} MHz), "
                      f"{info['images_per_second']:,} images/s (its UART carries "
                      f"{info['link_images_per_second']:,})")
        console.print(info["clock"]["summary"])
        summary.update(bitstream=info["bitstream"], lut4=info["lut4"], ff=info["ff"],
                       bram=info["bram"], fmax_mhz=info["fmax_mhz"],
                       clock_mhz=info["clock_mhz"], clock_source=clock,
                       images_per_second=info["images_per_second"],
                       link_images_per_second=info["link_images_per_second"],
                       fit_attempts=len(info["attempts"]))
        done("build", t)
    return folding


def _verify_stage(args, model, folding, out, console, summary, metrics, stage, done):
    """Stage 5: the hardware against the golden model over the test split."""
    t = stage(f"5/5 verify on {args.sim} over the test split (stall {args.stall})")
    from .sim import verify

    images = None if args.images == "all" else int(args.images)
    vrep = verify.run_verify(model, simulator=args.sim, folding=folding,
                             pipeline=args.pipeline, images=images,
                             stall=args.stall, seed=args.seed, report=out / "verify.json",
                             show_progress=True)
    agrees = vrep["mismatches"] == 0 and vrep["ii_measured"] == vrep["ii_expected"] \
        and vrep["latency_measured"] == vrep["latency_expected"]
    console.print(f"{vrep['images']} images, {vrep['mismatches']} mismatches, II "
                  f"{vrep['ii_measured']}/{vrep['ii_expected']}, latency "
                  f"{vrep['latency_measured']}/{vrep['latency_expected']}, "
                  f"{vrep['cycles_per_second']:.0f} cycles/s")
    summary.update(verified_images=vrep["images"], mismatches=vrep["mismatches"],
                   hardware_accuracy=_hardware_accuracy(model, vrep, metrics),
                   ii_measured=vrep["ii_measured"], latency_measured=vrep["latency_measured"])
    done(f"verify ({args.sim})", t, agrees=agrees)


class _Disagreement(BnnflowError):
    exit_code = 1


def _hardware_accuracy(model, vrep, metrics):
    """Hardware accuracy over the test split, or None when it was not fully verified.

    When every class the hardware produced for the whole split equals the golden model's, the
    hardware's accuracy is the golden model's accuracy.
    """
    from .model import data

    _, labels = data.test_split_for(model)
    if vrep["mismatches"] or vrep["images"] != len(labels):
        return None
    return metrics["golden_accuracy"]


def _print_summary(console, summary, stages):
    from rich.table import Table

    table = Table(title="bnnflow demo: tfc on digits, iCEBreaker")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, "-" if value is None else
                      f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    st = Table(title="stages")
    for col in ("stage", "seconds", "agrees with golden model"):
        st.add_column(col)
    for s in stages:
        agree = {True: "yes (bit-exact)", False: "NO", None: "-"}[s["agrees"]]
        st.add_row(s["stage"], f"{s['seconds']:.1f}", agree)
    console.print(st)
