"""The high-dimensional geometry of a trained network's quantized weights.

Anderson & Berg, "The High-Dimensional Geometry of Binary Neural Networks" (2017), explain why
binarized networks work: in high dimensions a binarized vector keeps a small angle to its
continuous original, while two random vectors are almost orthogonal, so dot products with the
activations are approximately preserved. This module measures that on a training checkpoint
(``RUN_DIR/checkpoint.pt``) and the test split it was trained against.

The maths
---------
**Angle to the quantized vector.** For a weight vector ``w`` of dimension ``d`` and its
binarized version ``b = sign(w)`` (``sign(0) = +1``)::

    cos(w, b) = (w . b) / (|w| |b|) = sum|w_i| / (|w| sqrt(d)).

For i.i.d. Gaussian ``w_i ~ N(0, s^2)``, ``sum|w_i| / d -> E|w_i| = s sqrt(2/pi)`` and
``|w| / sqrt(d) -> s``, so ``cos(w, b) -> sqrt(2/pi) = 0.798`` and the angle tends to
``arccos(sqrt(2/pi)) = 37.07`` degrees, whatever ``s`` and ``d`` (the spread shrinks like
``1/sqrt(d)``). ``w . b >= 0`` always, so the angle is never above 90 degrees.

**Random vectors.** Two independent Gaussian vectors ``u, v`` of dimension ``d`` have
``cos(u, v) ~ N(0, 1/d)`` approximately: their angle concentrates at 90 degrees with a spread
of ``(180/pi) / sqrt(d)`` degrees. A 37-degree angle is therefore far from chance.

**Dot products.** For a fixed ``w`` and Gaussian inputs ``a ~ N(0, I)``, ``x = a . w`` and
``y = a . b`` are jointly Gaussian with zero means, ``Var x = |w|^2``, ``Var y = |b|^2`` and
``Cov(x, y) = E[w^T a a^T b] = w . b``. Their correlation is therefore
``w . b / (|w| |b|) = cos(w, b)``: for Gaussian weights, ``sqrt(2/pi) = 0.798``. On real
activations (not isotropic) the correlation is measured: :func:`analyze` reports it pooled over
every (test image, neuron) pair, as the scatter plot shows it, and as the mean over neurons of
each neuron's own correlation across test images.

**Activations.** The hidden layers' continuous activations are their BatchNorm outputs before
``sign``; the layer after sees ``sign`` of them. :func:`analyze` reports, for the input of each
layer, the angle between the continuous and binarized activation vectors and the correlation
between their dot products with the layer's quantized weights. For the first layer the
continuous "activation" is ``pixel / scale - threshold``, the value whose sign is the input bit.

Quantizers
----------
:data:`QUANTIZERS` maps a name to a :class:`Quantizer`: ``"binary"`` (``sign``) and
``"ternary"`` (``-1, 0, +1`` with the threshold ``0.7 * mean|w|`` per neuron, as in ternary
weight networks). A new weight format is one more entry; every measure here works on the
quantized array it returns.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BnnflowError
from . import encoding

__all__ = [
    "CHECKPOINT_NAME",
    "CHECKPOINT_FORMAT",
    "Quantizer",
    "QUANTIZERS",
    "THEORY_ANGLE_DEG",
    "Checkpoint",
    "CheckpointLayer",
    "LayerData",
    "load_checkpoint",
    "checkpoint_path",
    "row_angles_deg",
    "random_angles_deg",
    "correlation",
    "per_column_correlation",
    "layer_inputs",
    "measure",
    "analyze",
    "summary_table",
    "write_plots",
]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "bnnflow-checkpoint"
CHECKPOINT_VERSIONS = (1,)

#: Histogram bins (degrees) of the per-neuron weight angles in the report.
ANGLE_BINS_DEG = np.linspace(0.0, 90.0, 46)


def _binary(w):
    """``sign(w)`` with ``sign(0) = +1``, as float."""
    return np.where(np.asarray(w) >= 0, 1.0, -1.0)


def _ternary(w, ratio=0.7):
    """``sign(w)`` where ``|w| > ratio * mean|w|`` of the row, else 0."""
    w = np.asarray(w, dtype=np.float64)
    delta = ratio * np.mean(np.abs(w), axis=-1, keepdims=True)
    return np.where(np.abs(w) > delta, np.where(w >= 0, 1.0, -1.0), 0.0)


def _ternary_gaussian_cos(ratio=0.7):
    # Threshold in units of the standard deviation: mean|w| -> s sqrt(2/pi).
    t = ratio * math.sqrt(2 / math.pi)
    kept = math.erfc(t / math.sqrt(2))                           # P(|w| > t)
    abs_mass = math.sqrt(2 / math.pi) * math.exp(-t * t / 2)     # E[|w|; |w| > t]
    return abs_mass / math.sqrt(kept)


@dataclass(frozen=True)
class Quantizer:
    """A weight quantizer and its limit angle for Gaussian weights.

    Parameters
    ----------
    name : str
    quantize : callable
        Maps a real array ``(N, K)`` to its quantized version ``(N, K)`` (float), row by row
        (one row is one neuron's weight vector).
    gaussian_cos : float
        Limit of ``cos(w, quantize(w))`` for i.i.d. Gaussian ``w`` as ``K -> infinity``.
    description : str
    """

    name: str
    quantize: object
    gaussian_cos: float
    description: str

    @property
    def theory_angle_deg(self):
        """``arccos(gaussian_cos)`` in degrees."""
        return math.degrees(math.acos(self.gaussian_cos))


#: name -> :class:`Quantizer`. ``"binary"`` is what bnnflow networks use today.
QUANTIZERS = {
    "binary": Quantizer("binary", _binary, math.sqrt(2 / math.pi),
                        "sign(w), sign(0) = +1; limit angle arccos(sqrt(2/pi))"),
    "ternary": Quantizer("ternary", _ternary, _ternary_gaussian_cos(),
                         "sign(w) where |w| > 0.7 mean|w| of the neuron, else 0"),
}

#: The paper's angle between a Gaussian vector and its binarized version, in degrees (37.07).
THEORY_ANGLE_DEG = QUANTIZERS["binary"].theory_angle_deg


def _quantizer(name):
    if name not in QUANTIZERS:
        raise ValueError(f"quantizer must be one of {sorted(QUANTIZERS)}, not {name!r}")
    return QUANTIZERS[name]


# --- measures ------------------------------------------------------------------------------


def row_angles_deg(a, b):
    """Angle in degrees between ``a[i]`` and ``b[i]`` for every row.

    Rows where either vector is zero have no angle: they are NaN.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, not {a.shape} and {b.shape}")
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    dots = np.sum(a * b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), np.nan)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def random_angles_deg(dimension, pairs=2000, seed=0):
    """Angles in degrees between ``pairs`` independent Gaussian vector pairs of a dimension."""
    if not isinstance(dimension, int) or dimension < 1:
        raise ValueError(f"dimension must be a positive integer, not {dimension!r}")
    if not isinstance(pairs, int) or pairs < 1:
        raise ValueError(f"pairs must be a positive integer, not {pairs!r}")
    rng = np.random.default_rng(seed)
    angles = []
    chunk = max(1, 4_000_000 // (2 * dimension))
    for start in range(0, pairs, chunk):
        n = min(chunk, pairs - start)
        u = rng.standard_normal((n, dimension))
        v = rng.standard_normal((n, dimension))
        angles.append(row_angles_deg(u, v))
    return np.concatenate(angles)


def correlation(x, y):
    """Pearson correlation of all elements of ``x`` and ``y``; ``None`` if one is constant."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same size, not {x.size} and {y.size}")
    xc = x - x.mean()
    yc = y - y.mean()
    denom = math.sqrt(float(xc @ xc) * float(yc @ yc))
    if x.size < 2 or denom == 0.0:
        return None
    return float(xc @ yc) / denom


def per_column_correlation(x, y):
    """Pearson correlation of ``x[:, j]`` and ``y[:, j]`` for every column; NaN if constant."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"x and y must be 2-D of the same shape, not {x.shape} and {y.shape}")
    xc = x - x.mean(axis=0)
    yc = y - y.mean(axis=0)
    denom = np.sqrt(np.sum(xc * xc, axis=0) * np.sum(yc * yc, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, np.sum(xc * yc, axis=0) / np.where(denom > 0, denom, 1), np.nan)


# --- checkpoint ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointLayer:
    """One binary linear layer of a checkpoint, as numpy arrays.

    Parameters
    ----------
    name : str
    latent : float64 array ``(N, K)``
        The real-valued latent weights.
    bn : dict
        ``weight``, ``bias``, ``running_mean``, ``running_var`` (float64 arrays ``(N,)``),
        ``eps`` (float) and ``kind`` (``"batchnorm1d"`` or ``"output_scale"``).
    """

    name: str
    latent: np.ndarray
    bn: dict

    def batchnorm(self, z):
        """The layer's BatchNorm (eval mode) applied to pre-activations ``z`` ``(B, N)``."""
        bn = self.bn
        return ((z - bn["running_mean"]) / np.sqrt(bn["running_var"] + bn["eps"])
                * bn["weight"] + bn["bias"])


@dataclass(frozen=True)
class Checkpoint:
    """A training checkpoint reduced to what the geometry needs.

    Parameters
    ----------
    path : Path
    config : dict
        The training configuration (``dataset``, ``input_encoding``, ...).
    layers : list of :class:`CheckpointLayer`
        In order; the output layer last.
    """

    path: Path
    config: dict
    layers: list


def checkpoint_path(run_dir):
    """The checkpoint of a run: ``RUN_DIR/checkpoint.pt``.

    ``run_dir`` may also be the checkpoint file itself, or the ``.bnn`` artifact beside it.
    """
    path = Path(run_dir)
    if path.suffix == ".pt" and not path.is_dir():
        return path
    if path.suffix == ".bnn" and not path.is_dir():
        return path.parent / CHECKPOINT_NAME
    return path / CHECKPOINT_NAME


def _fail(path, problem):
    return BnnflowError(f"{path}: {problem}; train first with 'bnnflow train --out "
                        f"{path.parent}' (it saves {CHECKPOINT_NAME} beside model.bnn)")


def _array(path, value, what):
    import torch

    if not isinstance(value, torch.Tensor):
        raise _fail(path, f"malformed checkpoint: {what} is not a tensor")
    return value.detach().to("cpu", torch.float64).numpy()


def load_checkpoint(run_dir):
    """Load and validate ``RUN_DIR/checkpoint.pt``.

    Raises
    ------
    BnnflowError
        One line naming the file when it is missing, unreadable or not a bnnflow checkpoint
        of a supported version with consistent layer shapes.
    """
    import torch

    path = checkpoint_path(run_dir)
    if not path.is_file():
        raise _fail(path, "no training checkpoint here")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for a bad file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise _fail(path, f"cannot read the checkpoint ({first})") from e
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise _fail(path, f"not a {CHECKPOINT_FORMAT} file")
    if raw.get("version") not in CHECKPOINT_VERSIONS:
        raise _fail(path, f"unsupported checkpoint version {raw.get('version')!r} "
                          f"(this bnnflow reads {list(CHECKPOINT_VERSIONS)})")
    config = raw.get("config")
    if not isinstance(config, dict):
        raise _fail(path, "malformed checkpoint: no config dict")
    try:
        encoding.validate(config.get("input_encoding"))
    except ValueError as e:
        raise _fail(path, f"malformed checkpoint: config.input_encoding: {e}") from e
    raw_layers = raw.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        raise _fail(path, "malformed checkpoint: no layers")
    layers = []
    for i, entry in enumerate(raw_layers):
        if not isinstance(entry, dict) or not isinstance(entry.get("bn"), dict):
            raise _fail(path, f"malformed checkpoint: layer {i} needs 'latent_weight' and 'bn'")
        name = str(entry.get("name", f"layer{i}"))
        latent = _array(path, entry.get("latent_weight"), f"{name}.latent_weight")
        if latent.ndim != 2:
            raise _fail(path, f"malformed checkpoint: {name}.latent_weight must be (N, K), "
                              f"not {latent.shape}")
        n, k = latent.shape
        if layers and k != layers[-1].latent.shape[0]:
            raise _fail(path, f"malformed checkpoint: {name} has {k} inputs but "
                              f"{layers[-1].name} has {layers[-1].latent.shape[0]} outputs")
        bn_raw = entry["bn"]
        bn = {"kind": bn_raw.get("kind"), "eps": bn_raw.get("eps")}
        if i < len(raw_layers) - 1:
            # Hidden layers: their BatchNorm gives the continuous activations. The output
            # layer's normalization never changes the class and is not needed here.
            if bn["kind"] != "batchnorm1d":
                raise _fail(path, f"malformed checkpoint: {name}.bn.kind must be "
                                  f"'batchnorm1d', not {bn['kind']!r}")
            if not isinstance(bn["eps"], int | float):
                raise _fail(path, f"malformed checkpoint: {name}.bn.eps must be a number")
            for key in ("weight", "bias", "running_mean", "running_var"):
                value = _array(path, bn_raw.get(key), f"{name}.bn.{key}")
                if value.shape != (n,):
                    raise _fail(path, f"malformed checkpoint: {name}.bn.{key} must have "
                                      f"shape ({n},), not {value.shape}")
                bn[key] = value
        layers.append(CheckpointLayer(name, latent, bn))
    return Checkpoint(path, config, layers)


def _test_images(checkpoint):
    from .data import load_dataset

    config = checkpoint.config
    try:
        dataset = load_dataset(config["dataset"], data_dir=config["data_dir"],
                               split_seed=config["split_seed"],
                               test_fraction=config["test_fraction"])
    except KeyError as e:
        raise _fail(checkpoint.path, f"malformed checkpoint: config has no {e}") from e
    return dataset.x_test


# --- analysis ------------------------------------------------------------------------------


def layer_inputs(checkpoint, images, forward="binary"):
    """Continuous and binarized (+-1) inputs of every layer for a batch of raw images.

    The network runs as trained (eval mode): ``z = x @ q(W).T``, ``y = BN(z)``,
    ``x_next = sign(y)`` with ``sign(0) = +1``. The first layer's continuous input is
    ``pixel / scale - threshold``.

    Parameters
    ----------
    checkpoint : Checkpoint
    images : array ``(B, H, W)`` or ``(B, K0)``
        Raw images.
    forward : str
        The quantizer ``q`` the network was trained with (``"binary"`` for every checkpoint of
        version 1).

    Returns
    -------
    list of ``(continuous, binary)`` float64 array pairs ``(B, K_l)``, one per layer.
    """
    quantize = _quantizer(forward).quantize
    images = np.asarray(images, dtype=np.float64)
    flat = images.reshape(images.shape[0], -1)
    k0 = checkpoint.layers[0].latent.shape[1]
    spec = checkpoint.config["input_encoding"]
    levels = encoding.validate(spec)
    if flat.shape[1] * levels != k0:
        raise BnnflowError(f"{checkpoint.path}: the first layer has {k0} inputs but the test "
                           f"images have {flat.shape[1]} pixels x {levels} bit(s) each")
    cont = encoding.centered(spec, flat)
    pairs = []
    for layer in checkpoint.layers:
        binary = _binary(cont)
        pairs.append((cont, binary))
        if layer.bn.get("kind") != "batchnorm1d":
            break
        cont = layer.batchnorm(binary @ quantize(layer.latent).T)
    return pairs


def _stats(values):
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None, None
    return float(finite.mean()), float(finite.std())


@dataclass(frozen=True)
class LayerData:
    """The per-layer arrays behind a report, for the plots.

    Parameters
    ----------
    angles : array ``(N,)``
        Angle in degrees between each neuron's latent and quantized weights (NaN for a zero
        row).
    random_angles : array ``(P,)``
        Angles between ``P`` random Gaussian pairs of the layer's input dimension.
    dots_latent, dots_quantized : arrays ``(B, N)``
        Binarized layer inputs times the latent and the quantized weights.
    act_dots_continuous, act_dots_binary : arrays ``(B, N)``
        Continuous and binarized layer inputs times the quantized weights.
    """

    angles: np.ndarray
    random_angles: np.ndarray
    dots_latent: np.ndarray
    dots_quantized: np.ndarray
    act_dots_continuous: np.ndarray
    act_dots_binary: np.ndarray


def measure(checkpoint, images, *, quantizer="binary", random_pairs=2000, seed=0):
    """Measure the geometry of every layer; returns ``(report, data)``.

    ``report`` is the JSON-able dict :func:`analyze` returns; ``data`` holds the arrays the
    plots need (one :class:`LayerData` per layer).
    """
    q = _quantizer(quantizer)
    if not isinstance(random_pairs, int) or random_pairs < 2:
        raise ValueError(f"random_pairs must be an integer >= 2, not {random_pairs!r}")
    inputs = layer_inputs(checkpoint, images)
    layers, data = [], []
    for index, (layer, (a_cont, a_bin)) in enumerate(zip(checkpoint.layers, inputs,
                                                         strict=True)):
        w = layer.latent
        wq = q.quantize(w)
        n, k = w.shape
        angles = row_angles_deg(w, wq)
        mean, std = _stats(angles)
        rand = random_angles_deg(k, random_pairs, seed=seed + index)
        dots_latent = a_bin @ w.T
        dots_quant = a_bin @ wq.T
        per_neuron = per_column_correlation(dots_latent, dots_quant)
        act_cont = a_cont @ wq.T
        act_bin = a_bin @ wq.T
        act_angles = row_angles_deg(a_cont, a_bin)
        act_mean, act_std = _stats(act_angles)
        hist, _ = np.histogram(angles[np.isfinite(angles)], bins=ANGLE_BINS_DEG)
        layers.append({
            "name": layer.name,
            "index": index,
            "dimension": int(k),
            "neurons": int(n),
            "angle_mean_deg": mean,
            "angle_std_deg": std,
            "angle_min_deg": None if mean is None else float(np.nanmin(angles)),
            "angle_max_deg": None if mean is None else float(np.nanmax(angles)),
            "angle_histogram": {"bin_edges_deg": ANGLE_BINS_DEG.tolist(),
                                "counts": hist.astype(int).tolist()},
            "zero_weight_rows": int(np.sum(~np.isfinite(angles))),
            "random_angle_mean_deg": float(rand.mean()),
            "random_angle_std_deg": float(rand.std()),
            "random_angle_pairs": int(rand.size),
            "dot_correlation": correlation(dots_latent, dots_quant),
            "dot_correlation_neuron_mean": _stats(per_neuron)[0],
            "activation_source": ("pixels / scale - threshold" if index == 0
                                  else f"batchnorm({checkpoint.layers[index - 1].name})"),
            "activation_angle_mean_deg": act_mean,
            "activation_angle_std_deg": act_std,
            "activation_dot_correlation": correlation(act_cont, act_bin),
        })
        data.append(LayerData(angles, rand, dots_latent, dots_quant, act_cont, act_bin))
    config = checkpoint.config
    report = {
        "checkpoint": str(checkpoint.path),
        "quantizer": q.name,
        "quantizer_description": q.description,
        "theory_angle_deg": q.theory_angle_deg,
        "theory_cos": q.gaussian_cos,
        "dataset": config.get("dataset"),
        "preset": config.get("preset"),
        "test_samples": int(inputs[0][0].shape[0]),
        "layers": layers,
    }
    return report, data


def analyze(run_dir, *, quantizer="binary", images=None, max_samples=2000, plots_dir=None,
            random_pairs=2000, seed=0):
    """Measure the geometry of a training run; returns the JSON-able report.

    Parameters
    ----------
    run_dir : path
        The run directory holding ``checkpoint.pt`` (or the checkpoint, or the ``.bnn`` beside
        it).
    quantizer : str
        Key of :data:`QUANTIZERS` the latent weights are compared with.
    images : array ``(B, H, W)`` or ``(B, K0)``, optional
        Raw test images; by default the test split recorded in the checkpoint's config.
    max_samples : int
        Use at most this many test images (the first ones of the split).
    plots_dir : path, optional
        Also write the PNG plots there (see :func:`write_plots`); their paths go into the
        report under ``"plots"``.
    random_pairs : int
        Gaussian vector pairs measured per layer for the random-angle reference.
    seed : int
        Seed of those random pairs.

    Returns
    -------
    dict
        ``theory_angle_deg``, ``quantizer``, ``test_samples`` and a ``layers`` list with per
        layer ``name``, ``dimension``, ``angle_mean_deg``, ``angle_std_deg``,
        ``angle_histogram``, ``random_angle_mean_deg``, ``random_angle_std_deg``,
        ``dot_correlation`` (pooled over images and neurons), ``dot_correlation_neuron_mean``,
        ``activation_angle_mean_deg`` and ``activation_dot_correlation``.

    Raises
    ------
    BnnflowError
        For a missing or malformed checkpoint, or test images that do not fit the network.
    """
    _quantizer(quantizer)
    if not isinstance(max_samples, int) or max_samples < 2:
        raise ValueError(f"max_samples must be an integer >= 2, not {max_samples!r}")
    checkpoint = load_checkpoint(run_dir)
    if images is None:
        images = _test_images(checkpoint)
    images = np.asarray(images)[:max_samples]
    if images.shape[0] < 2:
        raise BnnflowError(f"{checkpoint.path}: need at least 2 test images, "
                           f"got {images.shape[0]}")
    report, data = measure(checkpoint, images, quantizer=quantizer, random_pairs=random_pairs,
                           seed=seed)
    if plots_dir is not None:
        report["plots"] = {k: str(v) for k, v in write_plots(report, data, plots_dir).items()}
    return report


# --- presentation --------------------------------------------------------------------------


def _fmt(x, spec):
    return "N/A" if x is None else format(x, spec)


def summary_table(report):
    """A :class:`rich.table.Table` with one row per layer of a report from :func:`analyze`."""
    from rich.table import Table

    theory = report["theory_angle_deg"]
    table = Table(title=f"weight geometry: {report['quantizer']} weights, "
                        f"{report['test_samples']} test images",
                  caption=f"theory for Gaussian weights: {theory:.1f}°")
    for col in ("layer", "dim", "angle °", "random °", "dot r", "neuron r", "act angle °",
                "act r"):
        table.add_column(col, justify="left" if col == "layer" else "right")

    def spread(mean, std):
        return "N/A" if mean is None else f"{mean:.1f}±{std:.1f}"

    for entry in report["layers"]:
        table.add_row(entry["name"], str(entry["dimension"]),
                      spread(entry["angle_mean_deg"], entry["angle_std_deg"]),
                      spread(entry["random_angle_mean_deg"], entry["random_angle_std_deg"]),
                      _fmt(entry["dot_correlation"], ".3f"),
                      _fmt(entry["dot_correlation_neuron_mean"], ".3f"),
                      spread(entry["activation_angle_mean_deg"],
                             entry["activation_angle_std_deg"]),
                      _fmt(entry["activation_dot_correlation"], ".3f"))
    return table


def _save_png(fig, path):
    from ..fileio import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=72)


def _scatter(ax, x, y, rng, limit=4000):
    x = np.asarray(x).ravel()
    y = np.asarray(y).ravel()
    if x.size > limit:
        keep = rng.choice(x.size, limit, replace=False)
        x, y = x[keep], y[keep]
    ax.scatter(x, y, s=2, alpha=0.3, linewidths=0, rasterized=True)


def write_plots(report, data, plots_dir):
    """Write ``angles.png``, ``dots.png`` and ``activations.png`` into ``plots_dir``.

    * ``angles.png``: per layer, the histogram of angles between each neuron's latent weights
      and their quantized version, the theoretical angle for Gaussian weights (dashed) and the
      angles between random Gaussian vectors of the same dimension (near 90 degrees).
    * ``dots.png``: per layer, dot products of the layer's binary inputs with the latent
      weights (x) against those with the quantized weights (y), with their correlation.
    * ``activations.png``: per layer, dot products of the quantized weights with the
      continuous inputs (x) against the binarized inputs (y).

    Returns ``{"angles": path, "dots": path, "activations": path}``.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    plots_dir = Path(plots_dir)
    layers = report["layers"]
    n = len(layers)
    rng = np.random.default_rng(0)
    theory = report["theory_angle_deg"]
    paths = {}

    fig = Figure(figsize=(2.8 * n + 1.4, 2.6), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, entry, d in zip(axes, layers, data, strict=True):
        finite = d.angles[np.isfinite(d.angles)]
        bins = np.linspace(0, 120, 61)
        ax.hist(finite, bins=bins, color="tab:blue",
                label=f"latent vs {report['quantizer']}")
        # The random pairs' histogram is scaled to the number of neurons.
        scale = max(finite.size, 1) / d.random_angles.size
        ax.hist(d.random_angles, bins=bins, color="tab:gray", alpha=0.6,
                weights=np.full(d.random_angles.size, scale), label="random pairs")
        ax.axvline(theory, color="tab:red", linestyle="--", label=f"theory {theory:.0f}°")
        ax.set_title(f"{entry['name']} (d={entry['dimension']})", fontsize=9)
        ax.set_xlabel("angle (degrees)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("neurons", fontsize=8)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    paths["angles"] = plots_dir / "angles.png"
    _save_png(fig, paths["angles"])

    for key, xs, ys, xlabel, ylabel, corr_key in (
            ("dots", "dots_latent", "dots_quantized", "inputs · latent W",
             f"inputs · {report['quantizer']} W", "dot_correlation"),
            ("activations", "act_dots_continuous", "act_dots_binary",
             "continuous inputs · W", "binarized inputs · W", "activation_dot_correlation")):
        fig = Figure(figsize=(3.0 * n, 2.9), layout="constrained")
        axes = fig.subplots(1, n, squeeze=False)[0]
        for ax, entry, d in zip(axes, layers, data, strict=True):
            _scatter(ax, getattr(d, xs), getattr(d, ys), rng)
            ax.set_title(f"{entry['name']}: r = {_fmt(entry[corr_key], '.3f')}", fontsize=9)
            ax.set_xlabel(xlabel, fontsize=8)
            ax.tick_params(labelsize=7)
        axes[0].set_ylabel(ylabel, fontsize=8)
        paths[key] = plots_dir / f"{key}.png"
        _save_png(fig, paths[key])
    return paths
