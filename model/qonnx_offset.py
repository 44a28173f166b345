"""The output layer of an imported graph whose last hidden layer has unsigned activations
(Brevitas' ``QuantReLU``: levels ``s * a`` with ``a`` in ``0..L``), for
:mod:`bnnflow.model.qonnx_import`.

The conventions' ``n``-bit levels are ``v = 2a - L``, so a class's score is ``(s / 2) * (dot +
L * sum w)``: its dot plus an offset of its own, ``L * (2 * pos - K)`` for ``pos`` weights of
+1 out of ``K``. A hidden layer's thresholds absorb such an offset; the popcount output has no
place for it. It is carried exactly by ``M = max(pos) - min(pos)`` neurons added to the last
hidden layer, which always fire (thresholds 0, level ``L``): class ``c`` reads the first
``max(pos) - pos_c`` of them with weight -1 and the rest with +1, which adds
``L * (M - 2 * max(pos)) + L * 2 * pos_c`` to its dot. That is the offset plus one constant
shared by every class, so the argmax (lowest index on ties) is the graph's.
"""

import dataclasses

import numpy as np

from .artifact import DenseLayer
from .qonnx_graph import node_error

__all__ = ["offset_grid", "carry_offset"]


def offset_grid(top, inputs, offset):
    """Every value of ``dot + offset * sum w`` for ``inputs`` inputs of levels ``0..top``
    (``dot = 2p - top * inputs``) and +-1 weights: one parity, ``2`` apart (``offset`` 0: the
    reachable dots)."""
    reach = (top + abs(offset)) * inputs
    return np.arange(-reach, reach + 1, 2, dtype=np.float64)


def carry_offset(node, hidden, output, offset):
    """``(hidden, output)`` with the always-firing neurons that carry ``output``'s per-class
    offset (see the module); ``hidden`` is the last hidden layer (dense), ``output`` reads its
    levels with weights already oriented (a falling score map flipped)."""
    top = (1 << output.in_bits) - 1
    if getattr(hidden, "out_shape", None) is not None:
        raise node_error(node, "reads unsigned activations of a map; their per-class offset is "
                               "carried by always-firing neurons of a dense hidden layer, so "
                               "put a dense layer before the output (or use signed "
                               "activations)")
    if offset != top:
        raise node_error(node, f"reads levels with offset {offset}; bnnflow's output layer "
                               f"takes symmetric levels (offset 0) or unsigned ones (offset "
                               f"{top})")
    pos = output.weights.sum(axis=1, dtype=np.int64)
    count = int(pos.max() - pos.min())
    if count == 0:
        return hidden, output
    negative = pos.max() - pos
    extra = (np.arange(count)[None, :] >= negative[:, None]).astype(np.uint8)
    rows = {"weights": np.concatenate([hidden.weights,
                                       np.zeros((count, hidden.in_width), np.uint8)]),
            "thresholds": np.concatenate([hidden.thresholds, np.zeros(
                (count, hidden.thresholds.shape[1]), hidden.thresholds.dtype)])}
    if getattr(hidden, "mask", None) is not None:
        rows["mask"] = np.concatenate([hidden.mask, np.ones((count, hidden.in_width), np.uint8)])
    return (dataclasses.replace(hidden, **rows),
            DenseLayer(output.name, np.concatenate([output.weights, extra], axis=1), None,
                       in_bits=output.in_bits))
