"""Constant neurons that carry what moves each class's score by its own amount, for the output
layer of :mod:`bnnflow.model.qonnx_import`: levels with an offset before it (Brevitas'
``QuantReLU``: ``s * a`` with ``a`` in ``0..L``; a signed ``Quant`` without narrow range), and
a bias of its own.

Such levels are ``(s / 2) * (v + d)`` for the conventions' ``v = 2a - L`` and an integer ``d``
(``L`` unsigned, ``-1`` signed), so a class's score is ``(s / 2) * (dot + d * sum w)``: its dot
plus an offset of its own, ``d * (2 * pos - K)`` for ``pos`` weights of +1 out of ``K``. A
hidden layer's thresholds absorb such an offset; the popcount output has no place for it. It is
carried exactly by ``M`` neurons added to the last hidden layer, each at one fixed level ``a0``
whatever its input (``a0`` thresholds 0, the rest never reached), worth ``u = 2 * a0 - L =
gcd(|d|, L)``. With ``k = d / u``, class ``c`` reads ``k * pos_c - min(k * pos)`` of them with
weight +1 and the rest with -1, which adds ``2 * d * pos_c`` plus one constant to its dot, for
``M = |k| * (max(pos) - min(pos))``. So each popcount is the score plus a constant shared by
every class, and the argmax (lowest index on ties) is the graph's.

A **bias in the output layer** is carried by the same kind of neurons, worth 1 (``a0 = (L +
1) / 2``): :mod:`bnnflow.model.qonnx_bias`.
"""

import dataclasses
import math

import numpy as np

from .artifact import DenseLayer
from .qonnx_graph import node_error

__all__ = ["offset_grid", "repeated", "constants", "carry_offset"]


def offset_grid(top, inputs, offset):
    """Every value of ``dot + offset * sum w`` for ``inputs`` inputs of levels ``0..top``
    (``dot = 2p - top * inputs``) and +-1 weights: one parity, ``2`` apart (``offset`` 0: the
    reachable dots)."""
    reach = (top + abs(offset)) * inputs
    return np.arange(-reach, reach + 1, 2, dtype=np.float64)


def repeated(layer, times=2):
    """``layer`` with its neurons ``times`` times, ``[y, y, ...]`` (an output layer that reads
    its inputs so often: ternary weights, a bias between popcounts)."""
    arrays = {"weights": np.tile(layer.weights, (times, 1)),
              "thresholds": np.tile(layer.thresholds, (times, 1))}
    if getattr(layer, "mask", None) is not None:
        arrays["mask"] = np.tile(layer.mask, (times, 1))
    return dataclasses.replace(layer, **arrays)


def constants(hidden, output, plus, level):
    """``hidden`` with ``max(plus)`` neurons fixed at ``level``, and ``output`` reading
    ``plus[c]`` of them with weight +1 for class ``c`` (the rest -1)."""
    count = int(plus.max())
    if count == 0:
        return hidden, output
    extra = (np.arange(count)[None, :] < plus[:, None]).astype(np.uint8)
    t = hidden.thresholds
    never = ((1 << hidden.in_bits) - 1) * hidden.in_width + 1   # every weight live
    constant = np.where(np.arange(t.shape[1]) < level, 0, never)
    rows = {"weights": np.concatenate([hidden.weights,
                                       np.zeros((count, hidden.in_width), np.uint8)]),
            "thresholds": np.concatenate([t, np.tile(constant, (count, 1)).astype(t.dtype)])}
    if getattr(hidden, "mask", None) is not None:
        rows["mask"] = np.concatenate([hidden.mask, np.ones((count, hidden.in_width), np.uint8)])
    return (dataclasses.replace(hidden, **rows),
            DenseLayer(output.name, np.concatenate([output.weights, extra], axis=1), None,
                       in_bits=output.in_bits))


def carry_offset(node, hidden, output, offset):
    """``(hidden, output)`` with the constant neurons that carry ``output``'s per-class offset
    (see the module); ``hidden`` is the last hidden layer (dense), ``output`` reads its levels
    with weights already oriented (a falling score map flipped)."""
    if getattr(hidden, "out_shape", None) is not None:
        raise node_error(node, "reads levels with an offset (unsigned, or signed without "
                               "narrow range) of a map; their per-class offset is carried by "
                               "constant neurons of a dense hidden layer, so put a dense "
                               "layer before the output")
    top = (1 << output.in_bits) - 1
    unit = math.gcd(abs(offset), top)
    k = offset // unit
    pos = output.weights.sum(axis=1, dtype=np.int64)
    return constants(hidden, output, k * pos - (k * pos).min(), (unit + top) // 2)
