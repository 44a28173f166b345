"""The configuration of a training run (:class:`TrainConfig`) and its per-data-set defaults.

Presets are the MLPs of :data:`bnnflow.model.nets.PRESETS` (``tfc``, ``sfc``, ``lfc``, or
``custom`` hidden widths) and the convolutional networks of
:data:`bnnflow.model.cnn.CONV_PRESETS` (``cnv``, ``cnv-mnist``, or ``custom`` stages,
:mod:`bnnflow.model.stage_spec`).
"""

from dataclasses import asdict, dataclass

from ..errors import BnnflowError
from .cnn import CONV_PRESETS
from .encoding import MAX_LEVELS
from .nets import PRESETS, WEIGHT_KINDS
from .stage_spec import check_stages, stages_text

__all__ = ["OUTPUT_FILES", "DEFAULT_SHIFT", "DEFAULT_INPUT_THRESHOLD", "DEFAULT_DROPOUT",
           "BEYOND_W1A1_EPOCHS", "TrainConfig", "default_epochs", "is_conv_preset",
           "network_label"]

#: Files written into the output directory.
OUTPUT_FILES = ("model.bnn", "metrics.json", "training.png", "checkpoint.pt")

# Epochs per (preset, data set) when none is given; anything else uses _EPOCHS_FALLBACK.
_DEFAULT_EPOCHS = {
    ("tfc", "digits"): 60, ("sfc", "digits"): 60, ("lfc", "digits"): 40,
    ("tfc", "mnist5k"): 40, ("sfc", "mnist5k"): 40, ("lfc", "mnist5k"): 30,
    ("tfc", "mnist"): 20, ("sfc", "mnist"): 20, ("lfc", "mnist"): 20,
    ("cnv-mnist", "mnist5k"): 30, ("cnv-mnist", "mnist"): 10, ("cnv", "cifar10"): 30,
}
_EPOCHS_FALLBACK = {"digits": 60, "mnist5k": 40, "mnist": 20, "cifar10": 30}

#: Runs beyond W1A1 (ternary weights, n-bit activations, 8-bit inputs) default to this many
#: times the preset's epochs. Measured with tfc on mnist5k, seeds 0-5 (bench/README.md, "Beyond
#: W1A1"): from 40 to 80 epochs W1A2 gained 0.9 points on average, ternary weights 1.0 and 8-bit
#: inputs 0.6, while W1A1 stayed where it was (92.6 against 92.7 %).
BEYOND_W1A1_EPOCHS = 2

#: Default random shift (pixels) of the training images per data set.
DEFAULT_SHIFT = {"digits": 0, "mnist5k": 1, "mnist": 1, "cifar10": 0}

#: Default input threshold(s) (fractions of the pixel full scale) per data set. The 8x8 digits
#: have 17 grey levels and faint strokes: one threshold at 0.25 gave tfc 91-94 % depending on the
#: seed, a three-level thermometer code (0.25, 0.5, 0.75; 192 input bits) 95-97 % on the same
#: split (bench/train_bench.py). MNIST is nearly black and white: one threshold at 0.5. CIFAR-10:
#: one threshold at 0.5 on each colour channel (3 bits per pixel, channels-last).
DEFAULT_INPUT_THRESHOLD = {"digits": (0.25, 0.5, 0.75), "mnist5k": (0.5,), "mnist": (0.5,),
                           "cifar10": (0.5,)}

#: Default dropout on hidden activations per data set.
DEFAULT_DROPOUT = {"digits": 0.2, "mnist5k": 0.1, "mnist": 0.1, "cifar10": 0.1}


def network_label(preset, stages):
    """For messages: ``preset cnv-mnist``, or ``network c16k3s2-p2-d64`` for custom stages."""
    if preset == "custom" and stages:
        return f"network {stages_text(stages)}"
    return f"preset {preset}"


def is_conv_preset(preset):
    """True for the convolutional presets (:data:`bnnflow.model.cnn.CONV_PRESETS`)."""
    return preset in CONV_PRESETS


def default_epochs(preset, dataset, beyond_w1a1=False):
    """Default number of epochs for a preset (or ``"custom"``) on a data set; with
    ``beyond_w1a1`` (any of ternary weights, n-bit activations, 8-bit inputs)
    :data:`BEYOND_W1A1_EPOCHS` times as many."""
    epochs = _DEFAULT_EPOCHS.get((preset, dataset), _EPOCHS_FALLBACK.get(dataset, 40))
    return epochs * BEYOND_W1A1_EPOCHS if beyond_w1a1 else epochs


@dataclass
class TrainConfig:
    """Everything that defines a training run.

    Parameters
    ----------
    preset : str
        ``tfc``, ``sfc``, ``lfc``, or ``custom`` when ``hidden`` is given (MLPs), or a
        convolutional preset, ``cnv`` or ``cnv-mnist`` (:data:`~bnnflow.model.cnn.CONV_PRESETS`),
        or ``custom`` when ``stages`` is given.
    hidden : tuple of int or None
        Hidden widths of an MLP; ``None`` takes the preset's (and stays ``None`` for a
        convolutional network).
    stages : tuple or None
        Stages of a convolutional network (:mod:`bnnflow.model.stage_spec`: strided convs,
        overlapping pools); ``None`` takes a convolutional preset's (and stays ``None`` for an
        MLP). At least one conv or pool stage.
    dataset, data_dir, split_seed, test_fraction
        The data (see :func:`bnnflow.model.data.load_dataset`).
    seed : int
        Seed of initialization, shuffling and dropout.
    epochs : int or None
        ``None`` takes :func:`default_epochs` (twice as many beyond W1A1,
        :attr:`beyond_w1a1`).
    batch_size : int
    lr : float
        Peak learning rate of Adam (cosine schedule to 0).
    input_threshold : float, tuple of float, or None
        A pixel is bit 1 when ``pixel / full_scale >= input_threshold``; each in ``(0, 1]``.
        Several ascending thresholds give a thermometer code (one input bit per pixel and
        threshold, :mod:`bnnflow.model.encoding`). ``None`` takes the data set's default
        (:data:`DEFAULT_INPUT_THRESHOLD`).
    dropout : float or None
        Dropout on hidden binary activations during training; ``None`` takes the data set's
        default (:data:`DEFAULT_DROPOUT`).
    init_scale : float
        Scale of the Glorot-uniform latent weight initialization.
    augment_shift : int or None
        Training images are shifted by a random whole number of pixels in ``[-s, s]`` along
        each axis (a new draw per image and epoch, vacated pixels are background); 0 disables
        it, ``None`` takes the data set's default (:data:`DEFAULT_SHIFT`).
    weights : str
        ``"binary"`` or ``"ternary"`` hidden-layer weights (dense and conv layers; the output
        layer stays binary, :data:`~bnnflow.model.nets.WEIGHT_KINDS`).
    act_bits : int
        Bits of the hidden activations (1..4; dense and conv layers, pools of levels).
    quantizer : str
        ``"uniform"`` or ``"balanced"`` (equal shares): the cuts of ``n``-bit activations
        (:class:`~bnnflow.model.layers.LevelActivation`) and the zero band of ternary weights
        (:func:`~bnnflow.model.layers.ternary_delta`: a third of each neuron's weights zero).
    input_bits : int
        1 (pixels thresholded to bits) or 8 (each pixel an 8-bit input of the first layer,
        dense or conv, encoding ``pixels``).
    float_baseline : bool
        Also train the same topology in full precision and report ``float_accuracy``.
    out : path or None
        Output directory; ``None`` writes nothing (tests, benchmarks).
    threads : int
        ``torch.set_num_threads`` during training.
    progress : bool
        Show a rich progress bar.
    """

    preset: str = "tfc"
    hidden: tuple | None = None
    stages: tuple | None = None
    dataset: str = "digits"
    data_dir: str | None = None
    split_seed: int = 0
    test_fraction: float = 0.2
    seed: int = 0
    epochs: int | None = None
    batch_size: int = 64
    lr: float = 0.01
    input_threshold: float | tuple | None = None
    dropout: float | None = None
    init_scale: float = 1.0
    augment_shift: int | None = None
    weights: str = "binary"
    act_bits: int = 1
    quantizer: str = "uniform"
    input_bits: int = 1
    float_baseline: bool = False
    out: str | None = None
    threads: int = 1
    progress: bool = True

    @property
    def conv(self):
        """True for a convolutional network (a convolutional preset, or ``stages``)."""
        return self.stages is not None or is_conv_preset(self.preset)

    @property
    def beyond_w1a1(self):
        """True with ternary weights, multi-bit activations or multi-bit inputs."""
        return self.weights != "binary" or self.act_bits != 1 or self.input_bits != 1

    def topology(self):
        """The network's shape as recorded in metrics and provenance: ``{"hidden": [...]}``
        for an MLP, ``{"stages": [...]}`` for a convolutional network."""
        if self.conv:
            return {"stages": [list(s) for s in self.stages]}
        return {"hidden": list(self.hidden)}

    def _stages(self):
        if self.stages is None:
            return CONV_PRESETS.get(self.preset)
        if self.hidden is not None:
            raise BnnflowError("--hidden makes an MLP and --stages a convolutional network: "
                               "give one or the other")
        try:
            stages = check_stages(self.stages)
        except ValueError as e:
            raise BnnflowError(f"--stages: {e}") from None
        if all(s[0] == "dense" for s in stages):
            widths = ",".join(str(s[1]) for s in stages)
            raise BnnflowError(f"--stages has no conv or pool stage: for an MLP give --hidden "
                               f"{widths}")
        if self.input_bits > 1 and stages[0][0] == "pool":
            raise BnnflowError("--stages: a pool cannot take 8-bit pixels: start with a conv "
                               "stage, or drop --input-bits")
        return stages

    def _hidden(self):
        if self.conv:
            if self.hidden is not None:
                raise BnnflowError(f"--hidden sets the widths of an MLP preset "
                                   f"({', '.join(PRESETS)}); it does not apply to "
                                   f"{self.preset}")
            return None
        hidden = self.hidden
        if hidden is None:
            if self.preset not in PRESETS:
                raise BnnflowError(f"unknown preset {self.preset!r}; choose one of "
                                   f"{', '.join([*PRESETS, *CONV_PRESETS])} or give --hidden")
            hidden = PRESETS[self.preset]
        hidden = tuple(hidden)
        if not hidden or not all(isinstance(h, int) and h > 0 for h in hidden):
            raise BnnflowError(f"--hidden must be positive layer widths like 128,128, "
                               f"not {hidden!r}")
        return hidden

    def resolved(self):
        """A copy with ``hidden`` and ``epochs`` filled in, after checking every value.

        Raises
        ------
        BnnflowError
            For a value a user could have typed wrong, with the option to fix.
        """
        stages = self._stages()
        hidden = self._hidden()
        epochs = default_epochs(self.preset, self.dataset, self.beyond_w1a1) \
            if self.epochs is None else self.epochs
        shift = DEFAULT_SHIFT.get(self.dataset, 0) if self.augment_shift is None else \
            self.augment_shift
        dropout = DEFAULT_DROPOUT.get(self.dataset, 0.0) if self.dropout is None else \
            self.dropout
        threshold = DEFAULT_INPUT_THRESHOLD.get(self.dataset, (0.5,)) \
            if self.input_threshold is None else self.input_threshold
        if self.conv and self.input_threshold is None:
            threshold = (0.5,)  # conv inputs are channels-last maps: one bit per value
        if isinstance(threshold, int | float):
            threshold = (threshold,)
        threshold = tuple(threshold)
        checks = [
            ("--epochs", epochs, isinstance(epochs, int) and epochs > 0, "a positive integer"),
            ("--batch-size", self.batch_size,
             isinstance(self.batch_size, int) and self.batch_size > 0, "a positive integer"),
            ("--lr", self.lr, self.lr > 0, "positive"),
            ("--input-threshold", ",".join(f"{t:g}" for t in threshold),
             0 < len(threshold) <= MAX_LEVELS
             and all(isinstance(t, int | float) and 0 < t <= 1 for t in threshold)
             and all(b > a for a, b in zip(threshold, threshold[1:], strict=False)),
             f"1 to {MAX_LEVELS} ascending values in (0, 1] (fractions of the pixel full "
             f"scale)"),
            ("--dropout", dropout, 0 <= dropout < 1, "in [0, 1)"),
            ("--init-scale", self.init_scale, self.init_scale > 0, "positive"),
            ("--augment-shift", shift, isinstance(shift, int) and shift >= 0,
             "a non-negative integer"),
            ("--threads", self.threads, isinstance(self.threads, int) and self.threads > 0,
             "a positive integer"),
        ]
        for option, value, ok, what in checks:
            if not ok:
                raise BnnflowError(f"{option} must be {what}, not {value!r}")
        if self.weights not in WEIGHT_KINDS:
            raise BnnflowError(f"--weights must be one of {', '.join(WEIGHT_KINDS)}, not "
                               f"{self.weights!r}")
        if not (isinstance(self.act_bits, int) and 1 <= self.act_bits <= 4):
            raise BnnflowError(f"--act-bits must be an integer in 1..4, not {self.act_bits!r}")
        if self.quantizer not in ("uniform", "balanced"):
            raise BnnflowError(f"--quantizer must be uniform or balanced, not "
                               f"{self.quantizer!r}")
        if self.quantizer == "balanced" and self.act_bits == 1 and self.weights == "binary":
            raise BnnflowError("--quantizer balanced places the cuts of multi-bit activations "
                               "and the zero band of ternary weights; give --act-bits 2 or "
                               "more, or --weights ternary")
        if self.input_bits not in (1, 8):
            raise BnnflowError(f"--input-bits must be 1 or 8, not {self.input_bits!r}")
        if self.input_bits > 1 and self.input_threshold is not None:
            raise BnnflowError("--input-threshold binarizes pixels; --input-bits 8 keeps them "
                               "as 8-bit inputs: give one or the other")
        if self.conv and len(threshold) > 1:
            raise BnnflowError(f"--input-threshold must be one value for the convolutional "
                               f"{network_label(self.preset, stages)} (a thermometer code is "
                               f"level-major, not a channels-last map), not "
                               f"{','.join(f'{t:g}' for t in threshold)}")
        return TrainConfig(**{**asdict(self), "hidden": hidden, "stages": stages,
                              "epochs": epochs,
                              "augment_shift": shift, "dropout": dropout,
                              "input_threshold": threshold})


