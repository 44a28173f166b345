"""Random valid networks, for tests and for trying the hardware flow without training."""

import numpy as np

from .artifact import BnnModel, Conv2dLayer, DenseLayer, InputSpec, MaxPool2dLayer
from .ternary import TernaryDenseLayer
from .ternary_conv import TernaryConv2dLayer

__all__ = ["random_model", "random_conv_model", "parse_widths"]


def parse_widths(text):
    """``"6x3"`` or ``"16-8-4"`` -> ``[6, 3]`` / ``[16, 8, 4]``: a network's widths as
    :func:`random_model` takes them (the input width, then each layer's neurons).

    Raises
    ------
    ValueError
        Fewer than two widths or one that is not a positive integer.
    """
    parts = str(text).strip().lower().replace("-", "x").split("x")
    if len(parts) < 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"must be at least two positive widths joined by x or -, e.g. 6x3 "
                         f"or 16-8-4, not {text!r}")
    return [int(p) for p in parts]


def _thresholds(rng, k, n, edges):
    """Around K/2 so that neurons fire about half the time, plus a few edges."""
    t = np.clip(np.round(rng.normal(k / 2, max(1.0, np.sqrt(k) / 2), size=n)), 0, k + 1)
    if edges:
        for j, edge in enumerate((0, k, k + 1)):
            if j < n and rng.random() < 0.75:
                t[rng.integers(n)] = edge
    return t.astype(np.int64)[:, None]


def _ternary_layer(rng, name, k, n, zeros, edges, in_bits=1, act_bits=1):
    """A random ``ternary_dense`` layer (:func:`_ternary_arrays`)."""
    weights, mask, t = _ternary_arrays(rng, k, n, zeros, edges, in_bits, act_bits)
    return TernaryDenseLayer(name=name, weights=weights, mask=mask, thresholds=t,
                             in_bits=in_bits)


def _ternary_arrays(rng, k, n, zeros, edges, in_bits=1, act_bits=1):
    """Random signs and masks (about ``zeros`` of the weights 0), thresholds around ``m/2``
    (binary activations and inputs), else spread over ``0..L*m + 1``."""
    mask = (rng.random((n, k)) >= zeros).astype(np.uint8)
    weights = rng.integers(0, 2, size=(n, k), dtype=np.uint8) & mask
    live = mask.sum(axis=1) * ((1 << in_bits) - 1)
    if in_bits > 1 or act_bits > 1:
        t = np.stack([_level_thresholds(rng, int(m), 1, (1 << act_bits) - 1)[0] for m in live])
        return weights, mask, t
    t = np.array([_thresholds(rng, int(m), 1, False)[0, 0] for m in live])
    if edges and n:
        for edge in (0, 1):
            i = rng.integers(n)
            t[i] = live[i] + edge     # fires only at all live weights agreeing / never
    return weights, mask, t[:, None]


def _level_thresholds(rng, count, n, levels):
    """``levels`` sorted thresholds per neuron spread over ``0..count + 1``."""
    t = np.sort(rng.integers(0, count + 2, size=(n, levels)), axis=1)
    return t.astype(np.int64)


def random_model(widths, seed=0, edge_thresholds=True, ternary=False, zeros=0.3, act_bits=1,
                 input_bits=1):
    """Build a random valid :class:`BnnModel`.

    Parameters
    ----------
    widths : sequence of int
        ``[K0, N1, ..., C]``: the input width, then each layer's neuron count; the last entry
        is the number of classes. At least two entries, all positive.
    seed : int
        Seed of the numpy generator; the same seed gives the same network.
    edge_thresholds : bool
        Also place the edge thresholds 0 (always fires), ``K`` and ``K + 1`` (never fires) on
        some neurons, so that tests exercise them.
    ternary : bool
        Hidden layers are ``ternary_dense`` (the output layer stays binary), about ``zeros``
        of their weights 0.
    act_bits : int
        Bits of the hidden activations (``2**act_bits - 1`` thresholds per neuron); the layers
        after them take ``act_bits``-bit inputs.
    input_bits : int
        Bits of the input elements (8: pixels encoded ``{"kind": "pixels", "bits": 8}``, the
        first layer taking 8-bit inputs).

    Raises
    ------
    ValueError
        If ``widths`` has fewer than two entries or a non-positive one.
    """
    widths = list(widths)
    if input_bits != 1 and input_bits not in range(2, 9):
        raise ValueError(f"input_bits must be an integer in 1..8, not {input_bits!r}")
    if act_bits != 1 and (not isinstance(act_bits, int) or not 1 <= act_bits <= 8):
        raise ValueError(f"act_bits must be an integer in 1..8, not {act_bits!r}")
    if len(widths) < 2 or not all(isinstance(w, int | np.integer) and w > 0 for w in widths):
        raise ValueError(f"widths must be at least two positive integers, not {widths!r}")
    rng = np.random.default_rng(seed)
    layers = []
    for i, (k, n) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        if ternary and i < len(widths) - 2:
            layers.append(_ternary_layer(rng, f"fc{i}", k, n, zeros, edge_thresholds,
                                         input_bits if i == 0 else act_bits, act_bits))
            continue
        weights = rng.integers(0, 2, size=(n, k), dtype=np.uint8)
        thresholds = None
        if act_bits > 1 or input_bits > 1:
            in_bits = input_bits if i == 0 else act_bits
            if i < len(widths) - 2:
                thresholds = _level_thresholds(rng, ((1 << in_bits) - 1) * k, n,
                                               (1 << act_bits) - 1)
            layers.append(DenseLayer(name=f"fc{i}", weights=weights, thresholds=thresholds,
                                     in_bits=in_bits))
            continue
        if i < len(widths) - 2:
            thresholds = _thresholds(rng, k, n, edge_thresholds)
        layers.append(DenseLayer(name=f"fc{i}", weights=weights, thresholds=thresholds))
    spec = InputSpec(width=widths[0], shape=(widths[0],))
    if input_bits > 1:
        spec = InputSpec(width=widths[0], shape=(widths[0],),
                         encoding={"kind": "pixels", "scale": 1.0, "bits": input_bits})
    return BnnModel(layers=layers, input=spec,
                    classes=[str(c) for c in range(widths[-1])],
                    provenance={"source": "random_model", "seed": int(seed),
                                "widths": [int(w) for w in widths]})


def random_conv_model(in_shape, stages, classes, seed=0, edge_thresholds=True, ternary=False,
                      zeros=0.3, input_bits=1, act_bits=1):
    """A random valid convolutional :class:`BnnModel`.

    Parameters
    ----------
    in_shape : (H, W, C)
        The input map (one element per value, channels-last).
    stages : sequence
        ``("conv", Cout, kh[, kw[, stride[, pad[, pad_value]]]])``, ``("pool", window[,
        stride])`` and
        ``("dense", N)``, in order; the output layer of ``classes`` neurons follows.
    classes : int
    seed : int
    edge_thresholds : bool
        As for :func:`random_model`.
    ternary : bool
        Conv stages are ``ternary_conv2d`` and hidden dense stages ``ternary_dense`` (about
        ``zeros`` of their weights 0); the output layer stays binary.
    input_bits : int
        Bits of the input elements (8: pixels encoded ``{"kind": "pixels", "bits": 8}``, the
        first layer taking ``input_bits``-bit inputs).
    act_bits : int
        Bits of the hidden activations (``2**act_bits - 1`` thresholds per neuron); pools
        take the maximum level and the layers after them ``act_bits``-bit inputs.

    Raises
    ------
    ValueError
        A stage that is not one of the three forms, shapes that do not fit, or a first stage
        that is a pool with ``input_bits`` above 1.
    """
    if input_bits != 1 and input_bits not in range(2, 9):
        raise ValueError(f"input_bits must be an integer in 1..8, not {input_bits!r}")
    if not isinstance(act_bits, int) or not 1 <= act_bits <= 8:
        raise ValueError(f"act_bits must be an integer in 1..8, not {act_bits!r}")
    if input_bits > 1 and stages and stages[0][0] == "pool":
        raise ValueError("a pool cannot take n-bit inputs: start with a conv or dense stage")
    rng = np.random.default_rng(seed)
    layers, shape = [], tuple(in_shape)
    for i, stage in enumerate([*stages, ("dense", classes)]):
        last = i == len(stages)
        bits = input_bits if i == 0 else act_bits
        if stage[0] == "conv":
            layer = _random_conv(rng, f"conv{i}", shape, stage, edge_thresholds,
                                 zeros if ternary else None, bits, act_bits)
        elif stage[0] == "pool":
            layer = MaxPool2dLayer(f"pool{i}", shape, stage[1],
                                   stage[2] if len(stage) > 2 else None, bits=bits)
        elif stage[0] == "dense":
            width = int(np.prod(shape)) if isinstance(shape, tuple) else shape
            layer = _random_dense(rng, f"fc{i}", width, stage[1], last, edge_thresholds,
                                  zeros if ternary else None, bits, act_bits)
        else:
            raise ValueError(f"stage {i} must be conv, pool or dense, not {stage!r}")
        layers.append(layer)
        shape = getattr(layer, "out_shape", layer.out_width)
    width = int(np.prod(in_shape))
    spec = InputSpec(width=width, shape=tuple(in_shape))
    if input_bits > 1:
        spec = InputSpec(width=width, shape=tuple(in_shape),
                         encoding={"kind": "pixels", "scale": 1.0, "bits": input_bits})
    return BnnModel(layers=layers, input=spec, classes=[str(c) for c in range(classes)],
                    provenance={"source": "random_conv_model", "seed": int(seed)})


def _random_conv(rng, name, shape, stage, edges, zeros, in_bits, act_bits=1):
    """A random conv layer: ``ternary_conv2d`` when ``zeros`` is not None."""
    kernel = (stage[2], stage[3] if len(stage) > 3 else stage[2])
    geometry = {"stride": stage[4] if len(stage) > 4 else 1,
                "pad": stage[5] if len(stage) > 5 else 0,
                "pad_value": stage[6] if len(stage) > 6 else 0}
    k = kernel[0] * kernel[1] * shape[2]
    if zeros is not None:
        weights, mask, t = _ternary_arrays(rng, k, stage[1], zeros, edges, in_bits, act_bits)
        return TernaryConv2dLayer(name, shape, kernel, weights, t, in_bits=in_bits, mask=mask,
                                  **geometry)
    weights = rng.integers(0, 2, size=(stage[1], k), dtype=np.uint8)
    t = (_thresholds(rng, k, stage[1], edges) if in_bits == act_bits == 1 else
         _level_thresholds(rng, ((1 << in_bits) - 1) * k, stage[1], (1 << act_bits) - 1))
    return Conv2dLayer(name, shape, kernel, weights, t, in_bits=in_bits, **geometry)


def _random_dense(rng, name, k, n, last, edges, zeros, in_bits, act_bits=1):
    """A random dense stage: the binary output layer, or a hidden ``ternary_dense`` (when
    ``zeros`` is not None) or ``binary_dense`` layer."""
    if zeros is not None and not last:
        return _ternary_layer(rng, name, k, n, zeros, edges, in_bits, act_bits)
    t = None
    if not last:    # thresholds drawn before the weights, as random models always did
        t = (_thresholds(rng, k, n, edges) if in_bits == act_bits == 1 else
             _level_thresholds(rng, ((1 << in_bits) - 1) * k, n, (1 << act_bits) - 1))
    weights = rng.integers(0, 2, size=(n, k), dtype=np.uint8)
    return DenseLayer(name, weights, t, in_bits=in_bits)
