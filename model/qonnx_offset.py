"""Constant neurons that carry what moves each class's score by its own amount, for the output
layer of :mod:`bnnflow.model.qonnx_import`: levels with an offset before it (Brevitas'
``QuantReLU``: ``s * a`` with ``a`` in ``0..L``; a signed ``Quant`` without narrow range), and
a bias of its own in whole dot steps.

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

A **bias in the output layer** (``score = s * dot + b``) moves each class by ``b / s`` dot
steps. When these are whole numbers (Brevitas' ``Int32Bias``: ``b`` a multiple of the input
times the weight scale) they are carried the same way, by constant neurons worth 1 (``a0 = (L
+ 1) / 2``): class ``c`` reads ``sigma_c`` of them with +1, ``sigma = (beta - min beta) / 2``.
Steps of both parities (a half popcount apart) first take the layer's inputs twice (``[x,
x]``, half the scale: :func:`bias_steps`), which doubles every step.
"""

import dataclasses
import math

import numpy as np

from .artifact import DenseLayer
from .qonnx_graph import node_error

__all__ = ["offset_grid", "bias_grid", "carry_offset", "bias_steps", "output_bias",
           "carry_bias"]

#: Largest dot (plus bias) the output layer may reach: float32 sums stay exact below it.
EXACT_DOTS = 1 << 23


def offset_grid(top, inputs, offset):
    """Every value of ``dot + offset * sum w`` for ``inputs`` inputs of levels ``0..top``
    (``dot = 2p - top * inputs``) and +-1 weights: one parity, ``2`` apart (``offset`` 0: the
    reachable dots)."""
    reach = (top + abs(offset)) * inputs
    return np.arange(-reach, reach + 1, 2, dtype=np.float64)


def bias_grid(dots, beta):
    """The values ``dot + beta_c`` of the dots ``dots`` under a bias of ``beta`` dot steps per
    class (``None``: ``dots``), sorted: where the map after the last layer must be strictly
    monotone."""
    if beta is None:
        return dots
    return np.unique((dots[:, None] + np.unique(beta)[None, :]).ravel())


def _constants(hidden, output, plus, level):
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
    return _constants(hidden, output, k * pos - (k * pos).min(), (unit + top) // 2)


def bias_steps(node, bias, scale, reach):
    """The last layer's bias ``bias`` (per class) at dot scale ``scale`` in dot steps,
    ``beta = bias / scale``, as integers; and whether they mix parities (then the caller takes
    the inputs twice and calls again with half the scale). ``reach``: the largest ``|dot|``."""
    beta = np.asarray(bias, dtype=np.float64) / scale
    bad = np.flatnonzero(beta != np.round(beta))
    if bad.size:
        c = int(bad[0])
        raise node_error(node, f"the last layer's bias of class {c} is {beta[c]:g} dot steps "
                               f"(bias {bias[c]:g} / scale {scale[c]:g}), not a whole number, "
                               f"so it can reorder classes between two popcounts; quantize it "
                               f"on the scale (Brevitas: bias_quant=Int32Bias) or build the "
                               f"last layer without one (QuantLinear(bias=False))")
    if reach + np.abs(beta).max() >= EXACT_DOTS:
        raise node_error(node, f"the last layer's bias reaches {np.abs(beta).max():g} dot "
                               f"steps; float32 sums are exact only below {EXACT_DOTS}")
    beta = beta.astype(np.int64)
    return beta, len(np.unique(beta % 2)) > 1


def _compressed(shift, span):
    """``shift`` with every gap between its sorted values wider than ``span + 1`` narrowed to
    ``span + 1``: popcounts differ by at most ``span``, so a class that wins whatever the
    popcounts still does, and every other comparison is unchanged."""
    values = np.unique(shift)
    gaps = np.minimum(np.diff(values), span + 1)
    narrowed = np.concatenate([[0], np.cumsum(gaps)])
    return narrowed[np.searchsorted(values, shift)]


def output_bias(node, bias, bits, scale, top, offset):
    """``(bits, scale, beta)`` of an output layer with weight bits ``bits`` at dot scale
    ``scale`` whose inputs have levels ``0..top`` with ``offset``, under the bias ``bias`` (per
    class, or None: ``beta`` None): with steps of both parities the inputs taken twice
    (``[x, x]``) at half the scale, which makes every step even."""
    if bias is None:
        return bits, scale, None
    if np.size(bias) not in (1, np.size(scale)):
        raise node_error(node, f"the last layer's bias has {np.size(bias)} values for "
                               f"{np.size(scale)} classes")
    bias = np.broadcast_to(np.asarray(bias, dtype=np.float64).reshape(-1), np.shape(scale))
    reach = (top + abs(offset)) * bits.shape[1]
    beta, mixed = bias_steps(node, bias, scale, reach)
    if mixed:
        bits, scale = np.tile(bits, (1, 2)), scale / 2
        beta, _ = bias_steps(node, bias, scale, 2 * reach)
    return bits, scale, beta


def carry_bias(node, hidden, output, beta, span=None):
    """``(hidden, output)`` with the constant neurons that carry the last layer's bias of
    ``beta`` dot steps per class, all of one parity (:func:`bias_steps`), for ``output``'s
    weights already oriented (``beta`` negated for a falling score map). ``span``: how far
    the popcounts of two classes can differ without the bias (``None``: not known), to
    bound the neurons a large bias needs."""
    shift = (beta - beta.min()) // 2
    if span is not None:
        shift = _compressed(shift, span)
    if shift.max() > 0 and (hidden is None or getattr(hidden, "out_shape", None) is not None):
        where = "the input" if hidden is None else "a map"
        raise node_error(node, f"the last layer has a bias and reads {where}; the bias is "
                               f"carried by constant neurons of a dense hidden layer, so put "
                               f"a dense layer before the output")
    return _constants(hidden, output, shift, 1 << (output.in_bits - 1))   # (L + 1) / 2
