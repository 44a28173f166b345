"""A bias in the output layer, any float, as whole popcount shifts: for
:mod:`bnnflow.model.qonnx_import`.

The output layer's score is ``s * dot + b_c``, with ``dot = 2p + const``: in popcount units
``p_c + u_c`` for ``u_c = b_c / (2s)``, and the class is its argmax, lowest index on ties. The
popcount output has no fractions, but it can read the last hidden layer ``M`` times (popcount
``M * p``) and ``t_c`` constant neurons with +1 (:mod:`bnnflow.model.qonnx_offset`): the
golden class is then the argmax of ``M * p_c + t_c``, which orders every pair of classes as
``p_c + u_c`` does, ties included, for the smallest such ``M``
(:func:`class_shifts`).

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
depends on its runtime. Power-of-two scales and biases on the scale (``Int32Bias``) sum
exactly and have no margin (:func:`bnnflow.model.qonnx_fold.bias_margin`).
"""

import dataclasses
import math
from fractions import Fraction

import numpy as np

from .artifact import DenseLayer
from .qonnx_graph import node_error
from .qonnx_offset import constants, repeated

__all__ = ["PER_CLASS", "class_bias", "near_ties", "class_shifts", "carry_bias"]

#: Most bits a binary last hidden layer is widened to (levels 0 and ``2**n - 1``).
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
    return np.broadcast_to(np.asarray(bias, dtype=np.float64).reshape(-1), np.shape(scale))


def near_ties(node, bias, scale, margin, span):
    """Refuse ``bias`` (per class, score units) of an output layer at dot scale ``scale`` when
    two classes come within ``margin[c] + margin[d]`` (the float rounding of their sums, per
    class) of each other at popcounts ``0..span``, an exact tie included."""
    bias = np.asarray(bias, dtype=np.float64)
    margin = np.broadcast_to(np.asarray(margin, dtype=np.float64), bias.shape)
    c, d = np.triu_indices(len(bias), 1)
    r = (bias[c] - bias[d]) / (2 * scale)             # p_c + r vs p_d
    k = np.clip(np.round(-r), -span, span)
    gap = np.abs(2 * scale * (k + r))
    bad = np.flatnonzero((margin[c] + margin[d] > 0) & (gap <= margin[c] + margin[d]))
    if bad.size:
        i = int(bad[0])
        c, d, room = int(c[i]), int(d[i]), margin[c[i]] + margin[d[i]]
        raise node_error(node, f"the last layer's classes {c} and {d} come {gap[i]:g} apart at "
                               f"popcounts p{c} - p{d} = {int(k[i])}, within the float "
                               f"rounding ({room:g}) of adding their biases {bias[c]:g} and "
                               f"{bias[d]:g}, which depends on the runtime's order of "
                               f"additions; cannot import it exactly; {_FIX}")


def _bounds(u, span, reads):
    """``(lo, hi)`` on ``t_d - t_c`` for every pair ``c < d`` (``(C, C)`` arrays, ``-inf`` /
    ``inf`` where unbounded). ``u``'s floats are taken as exact numbers: float subtraction
    could round a whole difference off it."""
    n = len(u)
    lo, hi = np.full((n, n), -np.inf), np.full((n, n), np.inf)
    for c in range(n):
        for d in range(c + 1, n):
            k0 = math.ceil(Fraction(u[d]) - Fraction(u[c]))  # c wins iff p_c - p_d >= k0
            if k0 <= -span:                           # c wins whatever the popcounts
                hi[c, d] = -reads * span
            elif k0 > span:                           # c never wins
                lo[c, d] = reads * span + 1
            else:
                lo[c, d], hi[c, d] = reads * (k0 - 1) + 1, reads * k0
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
    neurons per class ``t`` (``t.min() == 0``) such that ``M * p_c + t_c`` orders every pair of
    classes as ``p_c + u_c`` does, ties to the lowest index, for popcounts ``0..span``; ``u``
    is the bias in popcount units."""
    u = np.asarray(u, dtype=np.float64)
    if not np.all(np.isfinite(u)):
        raise node_error(node, "the last layer's bias is not finite")
    for m in range(1, len(u) + 1) if reads is None else reads:
        shifts = _solve(*_bounds(u, span, m))
        if shifts is not None:
            return m, shifts
    raise node_error(node, f"the last layer's bias needs more than {len(u)} reads of the layer "
                           f"before it, which should not happen; {_FIX}")


def _widened(layer, bits):
    """``layer`` (binary activations) with ``bits``-bit ones at levels 0 and ``2**bits - 1``:
    every threshold the binary one, so each output is worth ``2**bits - 1`` times as much."""
    t = np.tile(layer.thresholds, (1, (1 << bits) - 1))
    return dataclasses.replace(layer, thresholds=t)


def carry_bias(node, hidden, output, u, span, widen=True):
    """``(hidden, output, note)`` carrying the last layer's bias of ``u`` popcounts per class
    (over popcounts ``0..span``): the output layer reads each hidden neuron ``M`` times and
    ``t_c`` constant neurons with +1 (:func:`class_shifts`). ``M = 2**n - 1`` costs nothing but
    bits when ``hidden`` is dense with binary activations (and ``widen``): its levels become
    ``n``-bit, 0 or ``M``. Otherwise its neurons are repeated ``M`` times. ``note``: what was
    added (provenance ``bias_neurons``), or None."""
    dense = hidden is not None and getattr(hidden, "out_shape", None) is None
    if widen and dense and output.in_bits == 1:
        reads, shifts = class_shifts(node, u, span, [(1 << n) - 1
                                                     for n in range(1, MAX_WIDEN_BITS + 1)])
        bits = reads.bit_length()
        if bits > 1:
            hidden = _widened(hidden, bits)
            output = DenseLayer(output.name, output.weights, None, in_bits=bits)
        how = {"bits": bits}
    else:
        reads, shifts = class_shifts(node, u, span)
        if reads > 1:
            if not dense:
                raise node_error(node, f"the last layer's bias needs its inputs read {reads} "
                                       f"times, which is imported after a dense hidden layer "
                                       f"only; {_FIX}")
            hidden = repeated(hidden, reads)
            output = DenseLayer(output.name, np.tile(output.weights, (1, reads)), None,
                                in_bits=output.in_bits)
        how = {"reads": reads}
    if shifts.max() > 0 and not dense:
        where = "the input" if hidden is None else "a map"
        raise node_error(node, f"the last layer has a bias and reads {where}; the bias is "
                               f"carried by constant neurons of a dense hidden layer, so put "
                               f"a dense layer before the output")
    if not dense or (reads == 1 and shifts.max() == 0):
        return hidden, output, None
    width = hidden.out_width
    hidden, output = constants(hidden, output, shifts, 1 << (output.in_bits - 1))  # (L+1)/2
    return hidden, output, {"layer": hidden.name, **how, "count": hidden.out_width - width}
