"""Folding a hidden layer's graph nodes into popcount thresholds, for
:mod:`bnnflow.model.qonnx_import`: the levels its activation reaches at every reachable
popcount become sorted thresholds (a falling neuron flips its weights), and for the Brevitas
pattern (BatchNorm then a 1-bit quantizer) torch's fold of the graph's BatchNorm is
cross-checked, as the rounding of non-power-of-two scales is bounded (:func:`rounding_margin`).
"""

import math
from fractions import Fraction

import numpy as np
import torch
from torch import nn

from .export import fold_batchnorm
from .qonnx_graph import is_power_of_two, node_error

__all__ = ["rounding_margin", "bias_margin", "sums_exact", "granule", "thresholds_of_levels",
           "torch_fold"]


class _ScaledBatchNorm1d(nn.BatchNorm1d):
    """A ``BatchNorm1d`` applied to ``in_scale * x + shift``: the graph's BatchNorm on the
    ``MatMul`` output ``scale * dot``, moved by ``shift`` to probe its rounding margin."""

    def __init__(self, num_features, eps, in_scale, shift):
        super().__init__(num_features, eps=eps)
        self.register_buffer("in_scale", torch.as_tensor(in_scale, dtype=torch.float32))
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32))

    def forward(self, x):
        return super().forward(x * self.in_scale + self.shift)


def _torch_bn(model, bn, scale, shift):
    """The graph's ``BatchNormalization`` node as a torch module (Brevitas' arithmetic)."""
    eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
    params = [model.get_initializer(name) for name in bn.input[1:5]]
    if any(p is None for p in params):
        raise node_error(bn, "scale, bias, mean and variance must be constants")
    module = _ScaledBatchNorm1d(len(params[0]), eps, scale, shift)
    with torch.no_grad():
        for name, value in zip(("weight", "bias", "running_mean", "running_var"), params,
                               strict=True):
            getattr(module, name).copy_(torch.tensor(np.array(value, np.float32)))
    return module.eval()


def rounding_margin(scale, count, terms=None):
    """How far a float32 ``MatMul`` output may be from ``scale * dot``, per neuron.

    0 for power-of-two scales (every product and partial sum is exact); otherwise a bound on
    the rounding of ``terms`` products (``K``; ``count`` when omitted, as for 1-bit inputs) and
    of their sum in any order, of total size at most ``scale * count`` (``L*K``, more for an
    input offset): ``terms * scale * count * 2**-23`` (each product and each addition errs by
    at most ``2**-24`` of that total).
    """
    scale = np.asarray(scale, dtype=np.float64)
    terms = count if terms is None else terms
    return np.where(is_power_of_two(scale), 0.0, float(terms) * count * scale * 2.0 ** -23)


def bias_margin(scale, bias, size, terms, grid=True):
    """How far a float32 ``Gemm``/``Conv`` output with a ``bias`` may be from ``scale * dot +
    bias``, per neuron, beyond :func:`rounding_margin`, for dots of at most ``size`` and
    ``terms`` products.

    With ``grid`` (every product an integer multiple of ``scale``: no fractional input offset)
    and a power-of-two ``scale`` no smaller than the unit in the last place ``u`` of the
    largest partial sum (``|bias| + scale * size``), every product and every sum of products is
    exact, and ``bias`` plus such a sum is rounded only when the sum reaches a coarser ``u``
    than before, in whatever order the runtime adds: the error stays below the largest ``u``;
    ``2u`` is used. Otherwise each of the ``terms`` additions may round:
    ``terms * (|bias| + scale * size) * 2**-23``. A zero bias adds nothing, and neither does
    one whose :func:`granule` is no finer than ``u`` (a whole multiple of such a ``scale``, as
    Brevitas' ``Int32Bias`` gives; 2.5 with sums below 64): every partial sum is then a
    multiple of ``u`` no larger than the largest, which float32 holds exactly.
    """
    scale, bias = np.asarray(scale, dtype=np.float64), np.asarray(bias, dtype=np.float64)
    top = np.abs(bias) + scale * size
    ulp = _ulp(top)
    on_grid = granule(bias) >= ulp           # every partial sum a multiple of the ulp
    margin = np.where(sums_exact(scale, bias, size, grid), np.where(on_grid, 0.0, 2 * ulp),
                      float(terms) * top * 2.0 ** -23)
    return np.where(bias == 0, 0.0, margin)


def _ulp(top):
    """float32's unit in the last place at magnitude ``top``."""
    return 2.0 ** (np.floor(np.log2(top)) - 23)


def sums_exact(scale, bias, size, grid=True):
    """Per neuron: are every product and every sum of products of a layer at ``scale`` exact
    in float32 up to ``|bias| + scale * size`` (``grid``: products are whole multiples of a
    power-of-two ``scale`` no smaller than the unit in the last place there)?"""
    scale, bias = np.asarray(scale, dtype=np.float64), np.asarray(bias, dtype=np.float64)
    return grid & is_power_of_two(scale) & (scale >= _ulp(np.abs(bias) + scale * size))


def granule(values):
    """The largest power of two that divides each value (``inf`` for 0): a sum of such values
    and multiples of a power-of-two scale is a multiple of the smaller of the two."""
    out = []
    for v in np.ravel(np.asarray(values, dtype=np.float64)):
        f = Fraction(float(v))
        n = abs(f.numerator)
        out.append(math.inf if n == 0 else (n & -n) / f.denominator)
    return np.reshape(np.array(out, dtype=np.float64), np.shape(values))


def thresholds_of_levels(node, levels, top, live):
    """Thresholds ``(N, top)`` and flips from levels ``(K + 1, N)`` per popcount, where neuron
    ``j`` reaches popcounts ``0..live[j]`` (all of them for binary weights, its live weights'
    for ternary ones). A falling neuron is flipped (popcount ``p`` read as ``live[j] - p``); a
    level never reached gets ``live[j] + 1``."""
    live = np.broadcast_to(np.asarray(live, dtype=np.int64), levels.shape[1:])
    p = np.arange(len(levels))[:, None]
    reach = p <= live[None, :]
    step, inner = np.diff(levels, axis=0), reach[1:]
    rising = np.all((step >= 0) | ~inner, axis=0)
    falling = np.all((step <= 0) | ~inner, axis=0)
    if not np.all(rising | falling):
        bad = int(np.flatnonzero(~(rising | falling))[0])
        raise node_error(node, f"neuron {bad}: the output is not monotone in the popcount; "
                               f"cannot fold it into thresholds")
    flip = ~rising
    source = np.clip(np.where(flip[None, :], live[None, :] - p, p), 0, len(levels) - 1)
    oriented = np.take_along_axis(levels, source, axis=0)
    columns = []
    for k in range(1, top + 1):
        fires = (oriented >= k) & reach
        columns.append(np.where(fires.any(axis=0), fires.argmax(axis=0), live + 1))
    return np.stack(columns, axis=1).astype(np.int64), flip


def torch_fold(model, bn, scale, margin, count, offset=0.0):
    """:func:`fold_batchnorm` on the graph's BatchNorm of ``scale * dot + offset`` (an offset
    per neuron: an ``n``-bit input's, :func:`~bnnflow.model.qonnx_input.input_spec`); the
    same at ``+-margin`` or refused."""
    offset = np.broadcast_to(np.asarray(offset, dtype=np.float64), np.shape(margin))
    results = [fold_batchnorm(_torch_bn(model, bn, scale, offset + shift), count)
               for shift in (np.zeros_like(margin), -margin, margin)]
    for t, f in results[1:]:
        if not (np.array_equal(t, results[0][0]) and np.array_equal(f, results[0][1])):
            raise node_error(bn, "a neuron fires or not within the float rounding of the "
                                 "MatMul before it (its scale is not a power of two); cannot "
                                 "import it exactly; give the weights a power-of-two scale "
                                 "(Brevitas: scaling_const = 1.0, as bnn_pynq's "
                                 "CommonWeightQuant)")
    return results[0]
