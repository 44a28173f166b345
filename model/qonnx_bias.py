"""A bias in the output layer, any float, as whole popcount shifts: for
:mod:`bnnflow.model.qonnx_import`.

The output layer's score is ``s * dot + b_c``, with ``dot = 2p + const``: in popcount units
``p_c + u_c`` for ``u_c = b_c / (2s)``, and the class is its argmax, lowest index on ties. The
popcount output has no fractions, but the output layer can weigh each input ``M`` times
(popcount ``M * p``) and read ``t_c`` constant inputs with +1: the golden class is then the
argmax of ``M * p_c + t_c``, which orders every pair of classes as ``p_c + u_c`` does, ties
included (:func:`class_shifts`). ``M`` is paid for by widening the last hidden layer's levels
to ``M`` times the old ones (``M * L = 2**n - 1``), or else by repeating its neurons; the
constants are neurons of a dense layer or channels of a conv layer (:func:`carry_bias`).

Why it exists: for classes ``c < d``, ``c`` wins when ``p_c - p_d >= k0 = ceil(u_d - u_c)``,
and the shifted popcounts give it the win when ``p_c - p_d >= ceil((t_d - t_c) / M)``. Over
the popcounts' range ``0..span`` each pair bounds ``t_d - t_c`` to ``M`` consecutive integers
(one side only when one class wins or loses whatever the popcounts), a system of difference
constraints that Bellman-Ford solves or proves empty. ``M`` = the number of distinct
fractional parts of ``u`` always works (``t_c = M * floor(u_c) +`` the rank of its fraction),
so ``M <= classes``; a bias in whole popcounts needs ``M = 1``, Brevitas' ``Int32Bias`` (whole
dot steps, half popcounts) at most 2.

A float bias makes the graph's sums round, in the order the runtime adds (Gemm may start from
``C``): :func:`near_ties` refuses a bias that brings two classes within that rounding of each
other at some pair of popcounts (an exact tie included), since the graph's own class there
depends on its runtime. Sums that never round (power-of-two scales, biases on the scale as
``Int32Bias`` gives) have no margin (:func:`bnnflow.model.qonnx_fold.bias_margin`).
"""

import dataclasses
import math
from fractions import Fraction

import numpy as np

from .artifact import DenseLayer
from .qonnx_graph import node_error
from .qonnx_offset import constants, repeated

__all__ = ["PER_CLASS", "class_bias", "near_ties", "class_shifts", "carry_bias"]

#: Most bits the last hidden layer's levels are widened to.
MAX_WIDEN_BITS = 8

_FIX = ("quantize it on the scale (Brevitas: bias_quant=Int32Bias) or build the last layer "
        "without one (QuantLinear(bias=False))")

PER_CLASS = ("the scores after the last layer are scaled or shifted per class, so their argmax "
              "can differ from the popcount argmax; use one shared map (e.g. Brevitas' "
              "TensorNorm) or none")


def class_bias(mm, bias, scale):
    """The last layer's bias, one value per class (float64), under one shared scale."""
    if np.size(bias) not in (1, np.size(scale)):
        raise node_error(mm, f"the last layer's bias has {np.size(bias)} values for "
                             f"{np.size(scale)} classes")
    if np.any(scale != scale[0]):
        raise node_error(mm, PER_CLASS)
    bias = np.broadcast_to(np.asarray(bias, dtype=np.float64).reshape(-1), np.shape(scale))
    if not np.all(np.isfinite(bias)):
        c = int(np.flatnonzero(~np.isfinite(bias))[0])
        raise node_error(mm, f"the last layer's bias of class {c} is {bias[c]}, not a finite "
                             f"number")
    return bias


def near_ties(node, bias, scale, margin, span, equal_tie=False):
    """Refuse ``bias`` (per class, score units) of an output layer at dot scale ``scale`` when
    two classes come within ``margin[c] + margin[d]`` (the float rounding of their sums, per
    class) of each other at popcounts ``0..span``, an exact tie included; with ``equal_tie``
    (the runtime adds each bias once, to an exact sum) two equal biases are exempt: their
    sums round alike."""
    bias = np.asarray(bias, dtype=np.float64)
    margin = np.broadcast_to(np.asarray(margin, dtype=np.float64), bias.shape)
    c, d = np.triu_indices(len(bias), 1)
    r = (bias[c] - bias[d]) / (2 * scale)             # p_c + r vs p_d
    k = np.clip(np.round(-r), -span, span)
    gap = np.abs(2 * scale * (k + r))
    bad = np.flatnonzero((margin[c] + margin[d] > 0) & (gap <= margin[c] + margin[d])
                         & ~(equal_tie & (bias[c] == bias[d])))
    if bad.size:
        i = int(bad[0])
        c, d, room = int(c[i]), int(d[i]), margin[c[i]] + margin[d[i]]
        raise node_error(node, f"the last layer's classes {c} and {d} come {gap[i]:g} apart at "
                               f"popcounts p{c} - p{d} = {int(k[i])}, within the float "
                               f"rounding ({room:g}) of adding their biases {bias[c]:g} and "
                               f"{bias[d]:g}, which depends on the runtime's order of "
                               f"additions; cannot import it exactly; {_FIX}")


def _wins_from(u):
    """``k0[c, d] = ceil(u_d - u_c)`` for ``c < d`` (0 elsewhere): class ``c`` wins against
    ``d`` when ``p_c - p_d >= k0``. ``u``'s floats are taken as exact numbers: a float
    subtraction could round a whole difference off it."""
    n = len(u)
    exact = [Fraction(v) for v in u]
    k0 = np.zeros((n, n), dtype=np.int64)
    for c in range(n):
        for d in range(c + 1, n):
            k0[c, d] = math.ceil(exact[d] - exact[c])
    return k0


def _bounds(k0, span, reads):
    """``(lo, hi)`` on ``t_d - t_c`` for every pair ``c < d`` (``(C, C)`` arrays, ``-inf`` /
    ``inf`` where unbounded) from :func:`_wins_from`'s ``k0``."""
    lo = np.where(k0 > span, reads * span + 1,                 # c never wins
                  np.where(k0 <= -span, -np.inf, reads * (k0 - 1) + 1)).astype(np.float64)
    hi = np.where(k0 <= -span, -reads * span,                  # c wins whatever the counts
                  np.where(k0 > span, np.inf, reads * k0)).astype(np.float64)
    return lo, hi


def _solve(lo, hi):
    """Integers ``t >= 0`` with ``lo[c, d] <= t[d] - t[c] <= hi[c, d]`` for ``c < d``, or None:
    Bellman-Ford over ``t[v] <= t[u] + w[u, v]`` from a source at 0 to every class."""
    n = len(lo)
    w = np.full((n, n), np.inf)
    c, d = np.triu_indices(n, 1)
    w[c, d] = hi[c, d]                                # t_d <= t_c + hi
    w[d, c] = -lo[c, d]                               # t_c <= t_d - lo
    dist = np.zeros(n)
    for _ in range(n + 1):
        new = np.minimum(dist, (dist[:, None] + w).min(axis=0))
        if np.array_equal(new, dist):
            return (dist - dist.min()).astype(np.int64)
        dist = new
    return None                                       # a negative cycle: no such t


def class_shifts(node, u, span, reads=None):
    """``(reads, shifts)``: the first ``M`` of ``reads`` (default ``1..classes``) and constant
    inputs per class ``t`` (``t.min() == 0``) such that ``M * p_c + t_c`` orders every pair of
    classes as ``p_c + u_c`` does, ties to the lowest index, for popcounts ``0..span``; ``u``
    is the bias in popcount units. ``None`` when no ``M`` of an explicit ``reads`` does."""
    k0 = _wins_from(np.asarray(u, dtype=np.float64))   # finite: class_bias checked it
    for m in range(1, len(u) + 1) if reads is None else reads:
        shifts = _solve(*_bounds(k0, span, m))
        if shifts is not None:
            return m, shifts
    if reads is not None:
        return None
    raise node_error(node, f"the last layer's bias needs more than {len(u)} reads of the layer "
                           f"before it, which should not happen; {_FIX}")


def _widened(tail, factor, bits):
    """``tail`` (a hidden layer and the pools after it) with ``bits``-bit levels ``factor``
    times its own (``L' = factor * L``), so each output is worth ``factor`` times as much:
    level ``a' >= k`` exactly when ``a >= ceil(k / factor)``, so threshold ``k`` of the new
    levels is threshold ``ceil(k / factor)`` of the old."""
    t = tail[0].thresholds
    pick = -(-np.arange(1, (1 << bits)) // factor) - 1        # ceil(k / factor) - 1
    return [dataclasses.replace(tail[0], thresholds=t[:, pick]),
            *(dataclasses.replace(pool, bits=bits) for pool in tail[1:])]


def widenings(in_bits):
    """``factor -> bits``: the factors by which ``in_bits``-bit levels (``0..L``) can be
    widened to ``bits``-bit ones (``2**bits - 1 = factor * L``), up to 8 bits."""
    top = (1 << in_bits) - 1
    return {((1 << n) - 1) // top: n for n in range(in_bits, MAX_WIDEN_BITS + 1)
            if ((1 << n) - 1) % top == 0}


def _map_constants(tail, output, plus, level):
    """:func:`~bnnflow.model.qonnx_offset.constants` for a map: ``tail`` is a conv layer and
    the pools after it; constant channels (every pixel fixed at ``level``) are added to the
    conv layer, and ``output`` reads ``plus[c]`` of their pixels with +1 for class ``c``."""
    conv, count = tail[0], int(plus.max())
    h, w, c = tail[-1].out_shape
    extra = -(-count // (h * w))                         # channels
    t = conv.thresholds
    constant = np.where(np.arange(t.shape[1]) < level, 0, conv.max_count + 1)
    rows = {"weights": np.concatenate([conv.weights,
                                       np.zeros((extra, conv.fan_in), np.uint8)]),
            "thresholds": np.concatenate([t, np.tile(constant, (extra, 1)).astype(t.dtype)])}
    if getattr(conv, "mask", None) is not None:
        rows["mask"] = np.concatenate([conv.mask, np.ones((extra, conv.fan_in), np.uint8)])
    tail = [dataclasses.replace(conv, **rows),
            *(dataclasses.replace(pool, in_shape=(*pool.in_shape[:2], pool.in_shape[2] + extra))
              for pool in tail[1:])]
    reads = (np.arange(h * w * extra)[None, :] < plus[:, None]).astype(np.uint8)
    weights = np.concatenate([output.weights.reshape(-1, h, w, c),
                              reads.reshape(-1, h, w, extra)], axis=3)   # channels-last
    return tail, DenseLayer(output.name, weights.reshape(len(plus), -1), None,
                            in_bits=output.in_bits), extra


def carry_bias(node, tail, output, u, span, widen=True):
    """``(tail, output, note)`` carrying the last layer's bias of ``u`` popcounts per class
    (over popcounts ``0..span``): the output layer weighs each input ``M`` times and reads
    ``t_c`` constant ones with +1 (:func:`class_shifts`). ``tail``: the layers after the last
    weighted hidden layer, that one included (a dense layer; a conv layer and its pools; none
    for the input). With ``widen``, ``M`` costs nothing but bits when ``M * L = 2**n - 1`` for
    some ``n <= 8``: its levels become ``n``-bit, ``M`` times the old ones (0 or ``M`` from
    binary activations). Otherwise a dense layer's neurons are repeated ``M`` times. The
    constants are neurons of a dense layer, channels of a conv layer. ``note``: what was
    added (provenance ``bias_neurons``), or None."""
    tail = list(tail)
    dense = len(tail) == 1 and getattr(tail[0], "out_shape", None) is None
    factors = widenings(output.in_bits)
    found = class_shifts(node, u, span, list(factors)) if tail and widen else None
    if found is not None:
        reads, shifts = found
        if reads > 1:
            tail = _widened(tail, reads, factors[reads])
            output = DenseLayer(output.name, output.weights, None, in_bits=factors[reads])
        how = {"bits": output.in_bits, "factor": reads}
    else:
        reads, shifts = class_shifts(node, u, span)
        if reads > 1:
            if not dense:
                raise node_error(node, f"the last layer's bias needs its inputs read {reads} "
                                       f"times, which is imported after a dense hidden layer "
                                       f"only when its levels cannot be widened by that much "
                                       f"within 8 bits; {_FIX}")
            tail = [repeated(tail[0], reads)]
            output = DenseLayer(output.name, np.tile(output.weights, (1, reads)), None,
                                in_bits=output.in_bits)
        how = {"reads": reads}
    if shifts.max() > 0 and not tail:
        raise node_error(node, "the last layer has a bias and reads the input; the bias is "
                               "carried by constant neurons of a hidden layer, so put a layer "
                               "before the output")
    if not tail or (reads == 1 and shifts.max() == 0):
        return tail, output, None
    level = 1 << (output.in_bits - 1)                     # (L + 1) / 2: worth 1
    if dense:
        width = tail[0].out_width
        hidden, output = constants(tail[0], output, shifts, level)
        return [hidden], output, {"layer": hidden.name, **how,
                                  "count": hidden.out_width - width}
    if shifts.max() == 0:
        return tail, output, {"layer": tail[0].name, **how, "count": 0}
    tail, output, channels = _map_constants(tail, output, shifts, level)
    return tail, output, {"layer": tail[0].name, **how, "count": int(shifts.max()),
                          "channels": channels}
