"""The high-dimensional geometry of a trained network's quantized weights.

Anderson & Berg, "The High-Dimensional Geometry of Binary Neural Networks" (2017), explain why
binarized networks work: in high dimensions a binarized vector keeps a small angle to its
continuous original, while two random vectors are almost orthogonal, so dot products with the
activations are approximately preserved. This module measures that on a training checkpoint
(``RUN_DIR/checkpoint.pt``, :mod:`bnnflow.model.checkpoint`) and the test split it was trained
against; :mod:`bnnflow.model.geometry_plots` shows the measures (table, PNG plots).

Each layer's real-valued forward pass is its kind's
(:meth:`bnnflow.model.kinds.LayerKind.preactivation`; ``x @ W.T`` for ``binary_dense``). A
neuron is one row of a layer's weight matrix: a conv layer's output channel is a
``kh * kw * Cin`` weight vector, and its inputs are the windows of the map (one per image and
output pixel, :meth:`bnnflow.model.checkpoint.CheckpointLayer.rows`), so conv layers are
measured as dense ones over their windows. Pool layers have no weights; they pass the max of
the continuous activations, whose sign is the OR of the bits.

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
continuous "activation" is ``pixel / scale - threshold``, the value whose sign is the input bit
(with 8-bit pixels: ``255 * (2 * pixel / scale - 1)`` against the levels ``2a - 255``).

Quantizers
----------
:data:`QUANTIZERS` maps a name to a :class:`Quantizer`: ``"binary"`` (``sign``) and
``"ternary"`` (``-1, 0, +1`` with the threshold ``0.7 * mean|w|`` per neuron, as in ternary
weight networks). A new weight format is one more entry; every measure here works on the
quantized array it returns.
"""

import math
from dataclasses import dataclass

import numpy as np

from ..errors import BnnflowError
from . import encoding
from .checkpoint import load_checkpoint, split_images
from .geometry_quantizers import QUANTIZERS, THEORY_ANGLE_DEG, Quantizer
from .geometry_quantizers import quantizer as _quantizer
from .geometry_quantizers import sign as _binary

__all__ = [
    "trained_weights",
    "Quantizer",
    "QUANTIZERS",
    "THEORY_ANGLE_DEG",
    "LayerData",
    "row_angles_deg",
    "random_angles_deg",
    "correlation",
    "per_column_correlation",
    "layer_inputs",
    "measure",
    "analyze",
]


#: Histogram bins (degrees) of the per-neuron weight angles in the report.
ANGLE_BINS_DEG = np.linspace(0.0, 90.0, 46)


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


# --- analysis ------------------------------------------------------------------------------


#: Elements (rows x fan-in) of one chunk of windows formed at a time: bounds the memory of a
#: conv layer's forward pass over many images.
_CHUNK_ELEMENTS = 1 << 23

#: Most (image, output pixel) rows of a conv layer that the dot-product measures use: a conv
#: layer sees ``Ho * Wo`` windows per image, too many to keep for thousands of images.
MAX_ROWS = 20000


def _forward(layer, binary, weights):
    """``layer.preactivation(binary, weights)`` over chunks of images (bounded memory)."""
    rows_per_image = max(1, layer.out_width // max(1, weights.shape[0]))
    chunk = max(1, _CHUNK_ELEMENTS // (rows_per_image * weights.shape[1]))
    return np.concatenate([layer.preactivation(binary[i:i + chunk], weights)
                           for i in range(0, len(binary), chunk)])


def _iter_layer_inputs(checkpoint, images, forward="binary"):
    quantize = _quantizer(forward).quantize
    images = np.asarray(images, dtype=np.float64)
    flat = images.reshape(images.shape[0], -1)
    k0 = checkpoint.layers[0].in_width
    spec = checkpoint.config["input_encoding"]
    levels = encoding.validate(spec)
    if flat.shape[1] * levels != k0:
        raise BnnflowError(f"{checkpoint.path}: the first layer has {k0} inputs but the test "
                           f"images have {flat.shape[1]} pixels x {levels} bit(s) each")
    if encoding.element_bits(spec) > 1:
        # n-bit pixels (--input-bits 8): the first layer sees the levels 2a - L, as trained
        # (its BatchNorm expects that scale), beside the continuous pixel on the same scale.
        top = (1 << encoding.element_bits(spec)) - 1
        cont = (flat / float(spec["scale"]) * 2 - 1) * top
        quantized = 2.0 * encoding.encode(spec, flat) - top
    else:
        cont = encoding.centered(spec, flat)
        quantized = _binary(cont)
    cuts = iter(checkpoint.cuts)
    last_cuts = None
    for layer in checkpoint.layers:
        yield cont, quantized
        if not layer.hidden:
            return
        if layer.has_weights:
            cont = layer.batchnorm(_forward(layer, quantized, quantize(layer.latent)))
            last_cuts = next(cuts, None)
        else:
            # The pool's real max, quantized as the layer before it: the max commutes with the
            # monotone activation (for sign, the OR of the window's bits).
            cont = layer.preactivation(cont, None)
        quantized = _activate(cont, last_cuts)


def _activate(y, cuts):
    """What the next layer sees of BatchNorm outputs ``y``: ``sign(y)``, or with the cuts of an
    ``n``-bit activation the level ``2a - L``, ``a`` the number of cuts ``y`` reaches."""
    if cuts is None:
        return _binary(y)
    a = np.sum(y[..., None] >= cuts, axis=-1)
    return 2.0 * a - len(cuts)


def trained_weights(checkpoint):
    """The quantizer a checkpoint's hidden layers were trained with: ``"binary"``, or
    ``"ternary"`` for ``train --weights ternary`` (its config's ``weights``), and
    ``"ternary-balanced"`` with ``--quantizer balanced``."""
    weights = checkpoint.config.get("weights", "binary")
    if weights == "ternary" and checkpoint.config.get("quantizer") == "balanced":
        return "ternary-balanced"
    return weights


def layer_inputs(checkpoint, images, forward="binary"):
    """Continuous and binarized (+-1) inputs of every layer for a batch of raw images.

    The network runs as trained (eval mode): ``z = x @ q(W).T`` (the layer kind's
    pre-activation: a conv layer's over its windows), ``y = BN(z)``, ``x_next = sign(y)`` with
    ``sign(0) = +1``; a pool layer passes the max of its window's continuous activations (whose
    sign is the OR of the window's bits). The first layer's continuous input is
    ``pixel / scale - threshold``; with n-bit pixels (``--input-bits 8``) it is
    ``L * (2 * pixel / scale - 1)`` and its quantized input the levels ``2a - L``.

    Parameters
    ----------
    checkpoint : Checkpoint
    images : array ``(B, H, W)``, ``(B, H, W, C)`` or ``(B, K0)``
        Raw images.
    forward : str
        The quantizer ``q`` the network was trained with (``"binary"`` for every checkpoint of
        version 1).

    Returns
    -------
    list of ``(continuous, binary)`` float64 array pairs ``(B, K_l)``, one per layer (maps
    flattened channels-last).
    """
    return list(_iter_layer_inputs(checkpoint, images, forward))


def _sample_rows(layer, arrays, max_rows, rng):
    """The same rows (:meth:`~bnnflow.model.checkpoint.CheckpointLayer.rows`) of each array:
    all of them, or ``max_rows`` (image, output pixel) pairs drawn without replacement."""
    images = len(arrays[0])
    per_image = layer.out_width // layer.latent.shape[0] if layer.params.get("kernel") else 1
    total = images * per_image
    if total <= max_rows:
        return [layer.rows(a) for a in arrays]
    pick = np.sort(rng.choice(total, size=max_rows, replace=False))
    out = [[] for _ in arrays]
    chunk = max(1, _CHUNK_ELEMENTS // (per_image * layer.latent.shape[1]))
    for start in range(0, images, chunk):
        lo, hi = np.searchsorted(pick, [start * per_image, (start + chunk) * per_image])
        local = pick[lo:hi] - start * per_image
        for rows, a in zip(out, arrays, strict=True):
            rows.append(layer.rows(a[start:start + chunk])[local])
    return [np.concatenate(rows) for rows in out]


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
    dots_latent, dots_quantized : arrays ``(R, N)``
        Binarized layer inputs times the latent and the quantized weights, one row per test
        image (dense) or sampled (image, output pixel) window (conv).
    act_dots_continuous, act_dots_binary : arrays ``(R, N)``
        Continuous and binarized layer inputs times the quantized weights.
    """

    angles: np.ndarray
    random_angles: np.ndarray
    dots_latent: np.ndarray
    dots_quantized: np.ndarray
    act_dots_continuous: np.ndarray
    act_dots_binary: np.ndarray


def _source(layers, index):
    """Where layer ``index``'s continuous input comes from, for the report."""
    if index == 0:
        return "pixels / scale - threshold"
    previous = layers[index - 1]
    if previous.has_weights:
        return f"batchnorm({previous.name})"
    return f"{previous.name}({_source(layers, index - 1)})"


def measure(checkpoint, images, *, quantizer="binary", random_pairs=2000, seed=0,
            max_rows=MAX_ROWS, output_quantizer=None):
    """Measure the geometry of every layer with weights; returns ``(report, data)``.

    ``report`` is the JSON-able dict :func:`analyze` returns; ``data`` holds the arrays the
    plots need (one :class:`LayerData` per reported layer). Pool layers have no weights and are
    not reported. A conv layer's neurons are its output channels, each a ``kh * kw * Cin``
    weight vector; its dot products are those with the windows of the test images, at most
    ``max_rows`` (image, output pixel) pairs drawn at random (``seed``). ``output_quantizer``:
    another quantizer for the output layer (a ternary network's stays binary); each layer's
    entry names its ``quantizer``.
    """
    q = _quantizer(quantizer)
    q_out = q if output_quantizer is None else _quantizer(output_quantizer)
    last = max(i for i, layer in enumerate(checkpoint.layers) if layer.has_weights)
    if not isinstance(random_pairs, int) or random_pairs < 2:
        raise ValueError(f"random_pairs must be an integer >= 2, not {random_pairs!r}")
    if not isinstance(max_rows, int) or max_rows < 2:
        raise ValueError(f"max_rows must be an integer >= 2, not {max_rows!r}")
    rng = np.random.default_rng(seed)
    layers, data, samples = [], [], None
    for index, (layer, (cont, binary)) in enumerate(zip(
            checkpoint.layers, _iter_layer_inputs(checkpoint, images, trained_weights(checkpoint)),
            strict=False)):
        samples = len(cont) if samples is None else samples
        if not layer.has_weights:
            continue
        a_cont, a_bin = _sample_rows(layer, [cont, binary], max_rows, rng)
        lq = q_out if index == last else q
        entry, arrays = _measure_layer(layer, lq, a_cont, a_bin, random_pairs, seed + index)
        entry.update({"name": layer.name, "kind": layer.kind, "index": index,
                      "quantizer": lq.name,
                      "activation_source": _source(checkpoint.layers, index)})
        layers.append(entry)
        data.append(arrays)
    config = checkpoint.config
    report = {
        "checkpoint": str(checkpoint.path),
        "quantizer": q.name,
        "quantizer_description": q.description,
        "theory_angle_deg": q.theory_angle_deg,
        "theory_cos": q.gaussian_cos,
        "dataset": config.get("dataset"),
        "preset": config.get("preset"),
        "test_samples": int(samples),
        "layers": layers,
    }
    return report, data


def _measure_layer(layer, q, a_cont, a_bin, random_pairs, seed):
    """The report entry and plot arrays of one layer from its input rows (one per image and
    output pixel): continuous ``a_cont`` and binarized ``a_bin``."""
    w = layer.latent
    wq = q.quantize(w)
    n, k = w.shape
    angles = row_angles_deg(w, wq)
    mean, std = _stats(angles)
    rand = random_angles_deg(k, random_pairs, seed=seed)
    dots_latent = a_bin @ w.T
    dots_quant = a_bin @ wq.T
    per_neuron = per_column_correlation(dots_latent, dots_quant)
    act_cont = a_cont @ wq.T
    act_bin = a_bin @ wq.T
    act_mean, act_std = _stats(row_angles_deg(a_cont, a_bin))
    hist, _ = np.histogram(angles[np.isfinite(angles)], bins=ANGLE_BINS_DEG)
    entry = {
        "dimension": int(k),
        "neurons": int(n),
        "rows": int(a_bin.shape[0]),
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
        "activation_angle_mean_deg": act_mean,
        "activation_angle_std_deg": act_std,
        "activation_dot_correlation": correlation(act_cont, act_bin),
    }
    return entry, LayerData(angles, rand, dots_latent, dots_quant, act_cont, act_bin)


def analyze(run_dir, *, quantizer=None, images=None, max_samples=2000, plots_dir=None,
            random_pairs=2000, seed=0):
    """Measure the geometry of a training run; returns the JSON-able report.

    Parameters
    ----------
    run_dir : path
        The run directory holding ``checkpoint.pt`` (or the checkpoint, or the ``.bnn`` beside
        it).
    quantizer : str or None
        Key of :data:`QUANTIZERS` the latent weights are compared with, in every layer;
        ``None``: the ones the network was trained with (:func:`trained_weights` in the hidden
        layers, binary in the output layer).
    images : array ``(B, H, W)`` or ``(B, K0)``, optional
        Raw test images; by default the test split recorded in the checkpoint's config.
    max_samples : int
        Use at most this many test images (the first ones of the split).
    plots_dir : path, optional
        Also write the PNG plots there (see
        :func:`bnnflow.model.geometry_plots.write_plots`); their paths go into the
        report under ``"plots"``.
    random_pairs : int
        Gaussian vector pairs measured per layer for the random-angle reference.
    seed : int
        Seed of those random pairs.

    Returns
    -------
    dict
        ``theory_angle_deg``, ``quantizer``, ``test_samples`` and a ``layers`` list (the layers
        with weights) with per layer ``name``, ``kind``, ``dimension`` (a neuron's fan-in),
        ``neurons``, ``rows`` (input rows measured: images, or sampled conv windows),
        ``angle_mean_deg``, ``angle_std_deg``,
        ``angle_histogram``, ``random_angle_mean_deg``, ``random_angle_std_deg``,
        ``dot_correlation`` (pooled over images and neurons), ``dot_correlation_neuron_mean``,
        ``activation_angle_mean_deg`` and ``activation_dot_correlation``.

    Raises
    ------
    BnnflowError
        For a missing or malformed checkpoint, or test images that do not fit the network.
    """
    if quantizer is not None:
        _quantizer(quantizer)
    if not isinstance(max_samples, int) or max_samples < 2:
        raise ValueError(f"max_samples must be an integer >= 2, not {max_samples!r}")
    checkpoint = load_checkpoint(run_dir)
    if images is None:
        images = split_images(checkpoint)
    images = np.asarray(images)[:max_samples]
    if images.shape[0] < 2:
        raise BnnflowError(f"{checkpoint.path}: need at least 2 test images, "
                           f"got {images.shape[0]}")
    output_quantizer = None
    if quantizer is None:       # as trained: ternary hidden layers, a binary output layer
        quantizer = trained_weights(checkpoint)
        output_quantizer = "binary"
    report, data = measure(checkpoint, images, quantizer=quantizer, random_pairs=random_pairs,
                           seed=seed, output_quantizer=output_quantizer)
    if plots_dir is not None:
        from .geometry_plots import write_plots

        report["plots"] = {k: str(v) for k, v in write_plots(report, data, plots_dir).items()}
    return report
