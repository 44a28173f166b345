"""The golden model as combinational logic, for formal proofs (:mod:`bnnflow.sim.prove`).

A proof compares what a unit emits with what the golden model computes from the same inputs,
for every input: the solver needs that model as logic over the input bits. The functions here
build it from a layer's weights and thresholds, step by step as each layer kind's ``forward``
(:mod:`bnnflow.model.conventions`): the XNOR of a bit with a constant weight is the bit or its
complement, a popcount is a sum of bits, a binary activation is ``popcount >= threshold``, a
pool output is the OR of its window. Which inputs a conv window or pool block reads is asked
of the numpy reference itself (:func:`~bnnflow.model.conventions.windows` on an index map,
padded with the index -1, which stands for the pad code's constant bits;
:func:`~bnnflow.model.conventions.maxpool_or` on one-hot maps), so the logic cannot drift from
it; tests/sim/test_formal_ref.py simulates this logic against the golden model.

Values are lists of Amaranth values, one per output element (a bit, an activation level or a
popcount lane), in the order of the layer's flattened output.
"""

import numpy as np
from amaranth.hdl import Cat, Const, Mux
from amaranth.utils import bits_for

from ..hw.argmax import class_width
from ..model import conventions

__all__ = ["layer_logic", "network_logic", "argmax_logic", "window_logic", "dense_logic",
           "flatten", "lane_width"]


def _popcount(bits, weights, top=1):
    """``popcount(XNOR(bits, weights))`` with constant weights: a sum of bits; for ``n``-bit
    elements (``top = 2**n - 1``) the sum of ``a`` or ``~a = L - a``."""
    terms = [b if w else ~b for b, w in zip(bits, weights, strict=True)]
    return _sum(terms, bits_for(len(terms) * top))


def _sum(terms, width):
    """The sum of unsigned ``terms`` as ``width`` bits, a balanced tree of additions: a chain
    of K of them nests K deep, and converting it overflowed Python's recursion limit from
    K = 192 (every digits model)."""
    while len(terms) > 1:
        terms = [a + b for a, b in zip(terms[::2], terms[1::2], strict=False)] + (
            [terms[-1]] if len(terms) % 2 else [])
    return Cat(terms[0], Const(0, width))[:width] if terms else Const(0, width)


def dense_logic(bits, weights, thresholds, mask=None, in_bits=1):
    """Each neuron's popcount, or its activation level ``sum_j (popcount >= t_j)``; with a
    ``mask`` (ternary weights) only the live positions count; with ``in_bits = n`` the inputs
    are ``n``-bit elements (:func:`~bnnflow.model.conventions.popcount_levels`)."""
    if in_bits > 1:
        bits = [Cat(*bits[j * in_bits:(j + 1) * in_bits]) for j in range(len(bits) // in_bits)]
    out = []
    for n, row in enumerate(np.asarray(weights)):
        live = np.ones(len(row), dtype=bool) if mask is None else np.asarray(mask[n]) == 1
        count = _popcount([b for b, z in zip(bits, live, strict=True) if z], row[live],
                          (1 << in_bits) - 1)
        if thresholds is None:
            out.append(count)
            continue
        levels = [count >= int(t) for t in np.atleast_1d(thresholds[n])]
        out.append(_sum(levels, bits_for(len(levels))))
    return out


def lane_width(layer):
    """Bits of one output element: ``bits_for(T)`` for activations, ``bits_for(K)`` for the
    popcounts of the output layer."""
    if layer.is_output:
        return bits_for(((1 << layer.in_bits) - 1) * layer.fan_in)
    if getattr(layer, "thresholds", None) is None:
        return layer.activation_bits       # a pool: the bits of its elements
    return bits_for(np.asarray(layer.thresholds).reshape(layer.neurons, -1).shape[1])


def _conv_windows(layer):
    """Input indices of each output pixel's window, ``(Ho * Wo, kh * kw * Cin)``; -1 at a
    padded position."""
    index = np.arange(layer.in_width)[None, :]
    return conventions.windows(index, layer.in_shape, layer.kernel,
                               **{**layer.geometry, "pad_value": -1})[0]


def _window_bits(layer, bits, window):
    """The bits of a window's elements, ``n`` per element; the pad code's at padded ones."""
    n = layer.in_bits
    return [bits[int(i) * n + b] if i >= 0 else Const((layer.pad_value >> b) & 1, 1)
            for i in window for b in range(n)]


def _pool_blocks(layer):
    """Input indices OR-ed into each output element."""
    eye = np.eye(layer.in_width, dtype=np.uint8)
    hit = conventions.maxpool_or(eye, layer.in_shape, layer.window, layer.stride)
    return [np.flatnonzero(hit[:, o]) for o in range(layer.out_width)]


def window_logic(layer, bits):
    """The windows of a conv layer's input map, one after the other, each in the
    ``(kh, kw, Cin)`` order of the weights (what its sliding-window unit sends, behind the pad
    unit of a padded layer); with ``in_bits = n`` each element is its ``n`` bits."""
    return [b for window in _conv_windows(layer) for b in _window_bits(layer, bits, window)]


def layer_logic(layer, bits):
    """Output elements of ``layer`` for input ``bits`` (a list of 1-bit values).

    Raises
    ------
    ValueError
        A layer kind this module has no logic for.
    """
    kind = layer.kind
    thresholds = None if layer.is_output else getattr(layer, "thresholds", None)
    if kind == "binary_dense":
        return dense_logic(bits, layer.weights, thresholds, in_bits=layer.in_bits)
    if kind == "ternary_dense":
        return dense_logic(bits, layer.weights, thresholds, layer.mask, layer.in_bits)
    if kind in ("binary_conv2d", "ternary_conv2d"):
        out = []
        for window in _conv_windows(layer):
            out.extend(dense_logic(_window_bits(layer, bits, window), layer.weights,
                                   thresholds, getattr(layer, "mask", None), layer.in_bits))
        return out
    if kind == "maxpool2d":
        n, out = layer.bits, []
        elements = bits if n == 1 else [Cat(*bits[j * n:(j + 1) * n])
                                        for j in range(len(bits) // n)]
        for block in _pool_blocks(layer):
            value = elements[int(block[0])]
            for i in block[1:]:
                # The OR of bits; the larger of two n-bit levels.
                value = value | elements[int(i)] if n == 1 else \
                    Mux(elements[int(i)] > value, elements[int(i)], value)
            out.append(value)
        return out
    raise ValueError(f"no formal reference for layer kind {kind!r}")


def argmax_logic(scores):
    """``(class index, scores)``: the lowest index of the maximum, as
    :func:`~bnnflow.model.conventions.argmax_lowest`."""
    cw = class_width(len(scores))
    best, best_score = Const(0, cw), scores[0]
    for c, score in enumerate(scores[1:], start=1):
        better = score > best_score
        best = Mux(better, c, best)
        best_score = Mux(better, score, best_score)
    return best


def flatten(elements, width):
    """Elements of ``width`` bits each as one value, element 0 in the lowest bits."""
    return Cat(*(Cat(e, Const(0, width))[:width] for e in elements))


def network_logic(model, bits):
    """The bits of ``BnnTop.o.payload`` for input ``bits``: class index, then the last layer's
    popcounts."""
    x = list(bits)
    for layer in model.layers:
        x = layer_logic(layer, x)
        if layer.is_output:
            break
        if layer.activation_bits > 1:
            # n-bit activations travel as their n bits, element j at [j*n, (j+1)*n).
            n = layer.activation_bits
            x = [Cat(v, Const(0, n))[b] for v in x for b in range(n)]
    return Cat(argmax_logic(x), flatten(x, lane_width(model.layers[-1])))
