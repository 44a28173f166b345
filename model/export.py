"""Exact export of a trained :class:`~bnnflow.model.nets.BinaryMLP` or
:class:`~bnnflow.model.cnn.BinaryCNN` to a ``.bnn`` model.

Conv layers fold their ``BatchNorm2d`` exactly as dense layers fold ``BatchNorm1d`` (below),
one threshold per output channel; their weights are flattened in ``(kh, kw, Cin)`` window
order. Ternary conv layers fold as ternary dense ones (:func:`fold_batchnorm_live`, over each
output channel's live popcount), and a first conv layer with ``n``-bit inputs as a dense one
(dots ``2p - L*K``). Max-pool stages become ``maxpool2d`` layers: pooling the bits after the
sign is the network's own order, so a flipped neuron (negative scale) pools the same bits.

Hidden layers: BatchNorm folded into integer popcount thresholds
    A hidden neuron with ``K`` inputs fires when ``BN(dot) >= 0`` (``sign(0) = +1``), where
    ``dot = 2p - K`` for the popcount ``p``. The export evaluates the layer's own eval-mode
    float32 ``BatchNorm1d`` module (the very torch ops the model runs) on every reachable dot
    value at once, so no algebra or rounding rule is involved:

    * scale ``gamma / sqrt(var + eps) >= 0`` (sign of the BN ``weight``): ``BN`` is
      non-decreasing in ``p``; the threshold is the smallest ``p`` in ``0..K`` whose output is
      ``>= 0``, or ``K + 1`` (never fires) if there is none. ``0`` means always fires.
    * negative scale: ``BN`` is non-increasing in ``p``. The neuron's weights are flipped
      (``w -> -w``, i.e. every weight bit inverted), which maps the popcount ``p`` to
      ``p' = K - p`` and ``dot`` to ``-dot``; the threshold is the smallest ``p'`` with
      ``BN(K - 2p') >= 0``. The hardware comparison ``popcount >= threshold`` never changes.
    * zero scale: the output is constant and the threshold comes out as ``0`` or ``K + 1``.

    Because the threshold is read off the same float32 outputs the model computes, the integer
    comparison equals the float one for every reachable popcount, edge cases (an output of
    exactly ``0``) included. The export checks the monotonicity it relies on and raises
    :class:`ExportError` if the float outputs break it.

Output layer: raw popcounts
    :class:`~bnnflow.model.layers.OutputNorm` applies one shared offset and one positive
    scale to every class, so its argmax is the argmax over the dot products, hence over the
    popcounts. The export checks that the float32 map is strictly increasing over every
    reachable dot value (two distinct popcounts never tie after normalization) and refuses a
    network whose output normalization could change the class (e.g. a per-class BatchNorm).
"""

import numpy as np
import torch
from torch import nn

from ..errors import BnnflowError
from .artifact import (
    BnnModel,
    Conv2dLayer,
    DenseLayer,
    InputSpec,
    MaxPool2dLayer,
    TernaryConv2dLayer,
    TernaryDenseLayer,
)
from .cnn import BinaryCNN
from .layers import BinaryConv2d, BinaryLinear, OutputNorm, TernaryConv2d, TernaryLinear
from .nets import BinaryMLP

__all__ = ["ExportError", "fold_batchnorm", "check_output_norm", "export_model", "bn_params"]


class ExportError(BnnflowError):
    """The network cannot be exported exactly; nothing is written."""


def _reachable_dots(k):
    """float32 tensor of ``dot = 2p - K`` for ``p = 0..K``, shape ``(K + 1, 1)``."""
    return (2 * torch.arange(k + 1, dtype=torch.float32) - k)[:, None]


def _bn_rows(bn, dots):
    """``bn`` applied to dots ``(R, N)`` (one column per neuron or output channel)."""
    if isinstance(bn, nn.BatchNorm2d):
        # The dots as one (1, N, R, 1) map: the NCHW layout the conv's output has.
        return bn(dots.T.contiguous()[None, :, :, None])[0, :, :, 0].T
    return bn(dots)


@torch.no_grad()
def fold_batchnorm(bn, k, level=0.0):
    """Fold an eval-mode ``BatchNorm1d`` after a ``K``-input binary layer into thresholds.

    Parameters
    ----------
    bn : nn.BatchNorm1d or nn.BatchNorm2d
        The layer's normalization (its running statistics are used, whatever its mode); a
        ``BatchNorm2d`` normalizes each output channel of a conv layer.
    k : int
        Inputs of the binary layer (``K``), or its largest popcount ``L*K`` when its inputs
        have ``n`` bits (the dots are then ``2p - L*K``).
    level : float
        The neuron fires when the BatchNorm output is ``>= level`` (0: the sign; the cut
        ``c_k`` of level ``k`` of an ``n``-bit activation,
        :meth:`~bnnflow.model.layers.LevelActivation.cuts`).

    Returns
    -------
    thresholds : int64 array ``(N,)`` in ``[0, K + 1]``
        The neuron fires when its popcount (with flipped weights where ``flip``) is ``>=``
        this value.
    flip : bool array ``(N,)``
        Neurons whose BatchNorm scale is negative: invert their weight bits.

    Raises
    ------
    ExportError
        If the float outputs are not monotone in the direction the scale's sign implies.
    """
    if not isinstance(bn, nn.BatchNorm1d | nn.BatchNorm2d):
        raise ExportError(f"hidden layers must be followed by nn.BatchNorm1d (dense) or "
                          f"nn.BatchNorm2d (conv), not {type(bn).__name__}")
    n = bn.num_features
    was_training = bn.training
    bn.eval()
    try:
        dots = _reachable_dots(k).expand(k + 1, n).contiguous()  # (K + 1, N), row j: 2j - K
        out = _bn_rows(bn, dots)
    finally:
        bn.train(was_training)
    fires = (out >= level).numpy()             # the float comparison, per popcount
    weight = bn.weight.detach() if bn.weight is not None else torch.ones(n)
    flip = (weight < 0).numpy()
    # With flipped weights the popcount p' sees dot = K - 2p', i.e. row K - p'.
    fires = np.where(flip[None, :], fires[::-1, :], fires)
    if np.any(fires[:-1] & ~fires[1:]):
        bad = int(np.flatnonzero(np.any(fires[:-1] & ~fires[1:], axis=0))[0])
        raise ExportError(f"neuron {bad}: BatchNorm output is not monotone in the popcount "
                          f"(non-finite statistics?); cannot fold it into a threshold")
    # Smallest p with fires[p]; K + 1 when it never fires.
    thresholds = np.where(fires.any(axis=0), fires.argmax(axis=0), k + 1).astype(np.int64)
    return thresholds, flip


@torch.no_grad()
def fold_batchnorm_live(bn, live, level=0.0):
    """:func:`fold_batchnorm` for ternary neurons: neuron ``n`` whose live popcount reaches at
    most ``live[n]`` (``L*m`` for ``m`` live weights and ``n``-bit inputs) sees
    ``dot = 2p - live[n]`` for ``p = 0..live[n]``; it fires where the BatchNorm output is
    ``>= level``.

    Returns ``(thresholds in [0, live + 1], flip)``; a flipped neuron's live popcount is
    ``live - p``, so its row of outcomes is reversed within ``0..live``.
    """
    live = np.asarray(live, dtype=np.int64)
    n, top = len(live), int(live.max(initial=0))
    if not isinstance(bn, nn.BatchNorm1d | nn.BatchNorm2d):
        raise ExportError(f"ternary hidden layers must be followed by nn.BatchNorm1d (dense) "
                          f"or nn.BatchNorm2d (conv), not {type(bn).__name__}")
    p = torch.arange(top + 1, dtype=torch.float32)[:, None]
    dots = (2 * p - torch.from_numpy(live).to(torch.float32)[None, :]).contiguous()
    was_training = bn.training
    bn.eval()
    try:
        fires = (_bn_rows(bn, dots) >= level).numpy()
    finally:
        bn.train(was_training)
    weight = bn.weight.detach() if bn.weight is not None else torch.ones(n)
    flip = (weight < 0).numpy()
    thresholds = np.empty(n, dtype=np.int64)
    for j in range(n):
        m = int(live[j])
        row = fires[:m + 1, j][::-1] if flip[j] else fires[:m + 1, j]
        if np.any(row[:-1] & ~row[1:]):
            raise ExportError(f"neuron {j}: BatchNorm output is not monotone in the live "
                              f"popcount (non-finite statistics?); cannot fold it")
        thresholds[j] = int(row.argmax()) if row.any() else m + 1
    return thresholds, flip


def _ternary_layer(name, fc, bn, act, in_bits=1):
    """A trained :class:`TernaryLinear` and its BatchNorm as a ``ternary_dense`` layer: the
    forward pass's own ``t(W)`` gives signs and mask, so they cannot drift from training. One
    threshold per cut of the activation ``act`` (one, at 0, for binary activations)."""
    t = fc.ternary_weight().numpy()
    mask = (t != 0).astype(np.uint8)
    signs = (t > 0).astype(np.uint8)
    signs, thresholds = _ternary_fold(signs, mask, bn, act, in_bits)
    return TernaryDenseLayer(name, signs, mask, thresholds, in_bits=in_bits)


def _ternary_fold(signs, mask, bn, act, in_bits):
    """``(signs, thresholds)`` of ternary neurons: one threshold per cut of ``act`` over the
    live popcount ``0..L*m``, the signs flipped (where live) for negative BatchNorm scales."""
    live = mask.sum(axis=1) * ((1 << in_bits) - 1)
    columns = []
    for cut in act.cuts():
        thresholds, flip = fold_batchnorm_live(bn, live, cut)
        columns.append(thresholds)
    signs = np.where(flip[:, None], (1 - signs) & mask, signs).astype(np.uint8)
    return signs, np.stack(columns, axis=1)


def _dense_layer(name, fc, bn, act, out_norm, in_bits):
    """A trained dense layer of an MLP or a CNN: the output layer (``bn`` None: popcounts, its
    normalization checked), or a hidden ternary (:func:`_ternary_layer`) or binary one (one
    threshold per cut of ``act`` over the popcounts ``0..L_in*K``)."""
    bits = (fc.weight.detach() >= 0).numpy().astype(np.uint8)  # sign(0) = +1
    count = ((1 << in_bits) - 1) * fc.in_features
    if bn is None:
        check_output_norm(out_norm, count)
        return DenseLayer(name, bits, None, in_bits=in_bits)
    if isinstance(fc, TernaryLinear):
        return _ternary_layer(name, fc, bn, act, in_bits)
    bits, thresholds = _binary_fold(bits, bn, act, count)
    return DenseLayer(name, bits, thresholds, in_bits=in_bits)


@torch.no_grad()
def check_output_norm(norm, k):
    """Refuse an output normalization whose class could differ from the popcount argmax.

    Raises
    ------
    ExportError
        If ``norm`` is not an :class:`~bnnflow.model.layers.OutputNorm`, or its eval-mode
        float32 output is not strictly increasing over the reachable dot values ``-K..K``.
    """
    if not isinstance(norm, OutputNorm):
        raise ExportError(f"the output layer's normalization must be OutputNorm (one shared "
                          f"positive scale, no per-class bias) for an exact popcount export, "
                          f"not {type(norm).__name__}")
    was_training = norm.training
    norm.eval()
    try:
        out = norm(_reachable_dots(k))[:, 0]
    finally:
        norm.train(was_training)
    if not (torch.isfinite(out).all() and torch.all(out[1:] > out[:-1])):
        raise ExportError(f"the output normalization (scale {float(norm.scale()):.3g}, "
                          f"variance {float(norm.running_var):.3g}) maps distinct popcounts to "
                          f"equal or decreasing scores, so argmax over popcounts could differ")


def bn_params(norm, n):
    """The normalization of a layer as the checkpoint's ``bn`` dict (tensors of shape ``(N,)``).

    ``OutputNorm`` is written per class as ``kind = "output_scale"`` with its shared
    statistics repeated: ``weight`` = the positive scale, ``bias`` = 0.
    """
    if isinstance(norm, nn.BatchNorm1d | nn.BatchNorm2d):
        return {"weight": norm.weight.detach().clone(), "bias": norm.bias.detach().clone(),
                "running_mean": norm.running_mean.detach().clone(),
                "running_var": norm.running_var.detach().clone(), "eps": float(norm.eps),
                "kind": "batchnorm1d" if isinstance(norm, nn.BatchNorm1d) else "batchnorm2d"}
    if isinstance(norm, OutputNorm):
        def rep(t):
            return t.detach().reshape(()).repeat(n).clone()
        return {"weight": rep(norm.scale()), "bias": torch.zeros(n),
                "running_mean": rep(norm.running_mean), "running_var": rep(norm.running_var),
                "eps": float(norm.eps), "kind": "output_scale"}
    raise ExportError(f"unknown normalization {type(norm).__name__}")


@torch.no_grad()
def export_model(net, input_spec, classes=(), provenance=None):
    """Build the exact :class:`~bnnflow.model.artifact.BnnModel` of a trained network.

    Parameters
    ----------
    net : BinaryMLP
        The trained network; its eval-mode behaviour is exported (its mode is not changed).
    input_spec : InputSpec
        How raw images become input bits (must match the network's input width).
    classes : sequence of str
    provenance : dict or None

    Raises
    ------
    ExportError
        If the network is not a :class:`BinaryMLP` or cannot be exported exactly.
    """
    if isinstance(net, BinaryCNN):
        return _export_cnn(net, input_spec, classes, provenance)
    if not isinstance(net, BinaryMLP):
        raise ExportError(f"only BinaryMLP and BinaryCNN networks can be exported, not "
                          f"{type(net).__name__}")
    if not isinstance(input_spec, InputSpec) or input_spec.width != net.widths[0]:
        raise ExportError(f"input spec must describe {net.widths[0]} input bits, "
                          f"not {input_spec!r}")
    layers = []
    for i, fc in enumerate(net.fcs):
        in_bits = input_spec.bits if i == 0 else getattr(net, "act_bits", 1)
        hidden = i < len(net.bns)
        layers.append(_dense_layer(f"fc{i}", fc, net.bns[i] if hidden else None,
                                   net.acts[i] if hidden else None, net.out_norm, in_bits))
    return BnnModel(layers=layers, input=input_spec, classes=tuple(classes),
                    provenance=dict(provenance or {}))


def _export_cnn(net, input_spec, classes, provenance):
    """:func:`export_model` for a :class:`~bnnflow.model.cnn.BinaryCNN`: layers named
    ``conv<i>``, ``pool<i>`` and ``fc<i>`` after their stage index; the first layer takes the
    input's elements (bits, or 8-bit pixels), every later one bits."""
    if not isinstance(input_spec, InputSpec) or input_spec.map_shape != net.in_shape:
        raise ExportError(f"input spec must describe a channels-last {net.in_shape} map with "
                          f"one element per value, not {input_spec!r}")
    layers, shape = [], net.in_shape
    act_bits = getattr(net, "act_bits", 1)
    for i, block in enumerate(net.blocks):
        in_bits = input_spec.bits if i == 0 else act_bits
        if isinstance(block, BinaryConv2d):
            layer = _conv_layer(f"conv{i}", block, net.norms[str(i)], net.acts[str(i)], shape,
                                in_bits)
        elif isinstance(block, nn.MaxPool2d):
            layer = MaxPool2dLayer(f"pool{i}", shape, int(block.kernel_size),
                                   int(block.stride), bits=act_bits)
        elif isinstance(block, BinaryLinear):
            hidden = i < len(net.blocks) - 1
            layer = _dense_layer(f"fc{i}", block, net.norms[str(i)] if hidden else None,
                                 net.acts[str(i)] if hidden else None, net.out_norm, in_bits)
        else:
            raise ExportError(f"block {i}: cannot export {type(block).__name__}")
        layers.append(layer)
        shape = getattr(layer, "out_shape", None)
    return BnnModel(layers=layers, input=input_spec, classes=tuple(classes),
                    provenance=dict(provenance or {}))


def _conv_layer(name, block, bn, act, shape, in_bits):
    """A trained conv block and its ``BatchNorm2d`` as a ``binary_conv2d`` or (a
    :class:`TernaryConv2d`) ``ternary_conv2d`` layer, weights in window order."""
    kernel, top = block.kernel, (1 << in_bits) - 1
    geometry = {"stride": block.stride}
    if block.pad:
        # The pad fill is the value 2a - L of the input code a that the artifact stores.
        code = (block.pad_fill + top) / 2
        if code != int(code) or not 0 <= code <= top:
            raise ExportError(f"{name}: pad fill {block.pad_fill:g} is the value of no "
                              f"{in_bits}-bit input code (2a - {top} for a in 0..{top})")
        geometry.update(pad=block.pad, pad_value=int(code))
    if isinstance(block, TernaryConv2d):
        t = block.ternary_window_weight().numpy()
        mask = (t != 0).astype(np.uint8)
        signs, thresholds = _ternary_fold((t > 0).astype(np.uint8), mask, bn, act, in_bits)
        return TernaryConv2dLayer(name, shape, kernel, signs, thresholds, in_bits=in_bits,
                                  mask=mask, **geometry)
    latent = block.window_weight()
    bits = (latent >= 0).numpy().astype(np.uint8)  # sign(0) = +1
    bits, thresholds = _binary_fold(bits, bn, act, ((1 << in_bits) - 1) * latent.shape[1])
    return Conv2dLayer(name, shape, kernel, bits, thresholds, in_bits=in_bits, **geometry)


def _binary_fold(bits, bn, act, count):
    """``(bits, thresholds)`` of binary neurons: one threshold per cut of ``act`` over the
    popcounts ``0..count``, the weights flipped for negative BatchNorm scales (the flip
    follows the sign of the scale alone: the same at every cut)."""
    columns = []
    for cut in act.cuts():
        thresholds, flip = fold_batchnorm(bn, count, cut)
        columns.append(thresholds)
    return np.where(flip[:, None], 1 - bits, bits).astype(np.uint8), np.stack(columns, axis=1)
