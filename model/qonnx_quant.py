"""Quantizer nodes of a QONNX graph, for :mod:`bnnflow.model.qonnx_import`: their scales, bit
widths and what their outputs mean as levels.

* Weights: ``BipolarQuant`` or a signed 1-bit ``Quant`` (+-1 times the scale).
* Activations: the same, FINN's ``MultiThreshold`` with ``2**n - 1`` thresholds
  (:func:`activation`), a signed narrow-range ``n``-bit ``Quant``, whose levels
  ``-(2**(n-1) - 1) .. 2**(n-1) - 1`` are read as thermometer bits, or an unsigned ``n``-bit
  ``Quant`` (Brevitas' ``QuantReLU``, levels ``0 .. 2**n - 1``) or a signed one without narrow
  range (Brevitas' default ``QuantIdentity``, levels ``-2**(n-1) .. 2**(n-1) - 1``), whose
  levels are ``n``-bit levels with an offset (:func:`activation_offset`).
"""

import numpy as np

from .qonnx_graph import is_power_of_two, node_error

__all__ = ["activation", "activation_levels", "activation_offset", "quant_scale",
           "ternary_levels", "scalar", "positive", "level_min"]


def scalar(model, node, index, what):
    value = model.get_initializer(node.input[index]) if len(node.input) > index else None
    if value is None or np.size(value) != 1:
        raise node_error(node, f"{what} must be a constant scalar, not "
                               f"{'missing' if value is None else np.shape(value)}")
    return float(np.asarray(value).reshape(()))


def positive(node, value, what):
    value = np.asarray(value, dtype=np.float64)
    if not np.all((value > 0) & np.isfinite(value)):
        raise node_error(node, f"{what} must be positive, not {value.ravel()[:4].tolist()}")


def _is_unsigned(node):
    """Whether ``node`` is an unsigned ``Quant`` (``signed = 0``: Brevitas' ``QuantReLU``)."""
    return node.op_type == "Quant" and not next(
        (a.i for a in node.attribute if a.name == "signed"), 1)


def level_min(model, node):
    """``q_min`` of a ``Quant`` read as ``n``-bit levels ``a = q - q_min`` (unsigned: 0; signed,
    ``n >= 2``: ``-2**(n-1)``, or ``-2**(n-1) + 1`` with narrow range and ``n >= 3``, whose
    top level is then never reached), or ``None`` for a quantizer read otherwise (bipolar, or
    a signed narrow-range 2-bit one: two thermometer bits, as bnn_pynq's 2-bit networks are
    imported; 2**n - 2 of them would make wider layers from 3 bits on)."""
    if _is_unsigned(node):
        return 0
    if node.op_type != "Quant":
        return None
    bits = int(scalar(model, node, 3, "the bit width"))
    narrow = next((a.i for a in node.attribute if a.name == "narrow"), 0)
    if bits == 1 or (narrow and bits == 2):
        return None
    return -(1 << (bits - 1)) + narrow


def quant_scale(model, node, activation=False):
    """``(scale array, bit width)`` of a quantizer node: signed 1-bit; for weights also a
    signed narrow-range 2-bit ``Quant`` (-1, 0, +1: ternary), for activations a signed
    ``n``-bit ``Quant`` with narrow range (levels ``-(2**(n-1) - 1) .. 2**(n-1) - 1``,
    symmetric about 0 as Brevitas' bnn_pynq ``CommonActQuant``) or without (levels ``-2**(n-1)
    .. 2**(n-1) - 1``, as Brevitas CNV's 8-bit input), ``n`` up to 8, or an unsigned 1- to
    8-bit one (levels ``0 .. 2**n - 1``, ``2**n - 2`` with narrow range); anything else is
    refused."""
    scale = model.get_initializer(node.input[1])
    if scale is None:
        raise node_error(node, "the scale must be a constant")
    bits = 1
    if node.op_type == "Quant":
        bits = scalar(model, node, 3, "the bit width")
        attrs = {a.name: a.i for a in node.attribute if a.name in ("signed", "narrow")}
        narrow = attrs.get("narrow", 0)
        if not activation and bits != 1 and not (bits == 2 and narrow):
            kind = "" if narrow else " without narrow range"
            raise node_error(node, f"{bits:g}-bit weights{kind}; bnnflow imports binary and "
                                   f"ternary weights (BipolarQuant, 1-bit signed Quant, or "
                                   f"2-bit narrow-range Quant: -1, 0, +1)")
        signed = attrs.get("signed", 1)
        if not signed and not activation:
            raise node_error(node, f"unsigned {bits:g}-bit weights have no level -1; bnnflow "
                                   f"imports signed weight quantizers")
        if not (bits == int(bits) and 1 <= bits <= 8):
            raise node_error(node, f"a {bits:g}-bit Quant; bnnflow imports activations of 1 "
                                   f"to 8 bits")
        if scalar(model, node, 2, "the zero point") != 0:
            raise node_error(node, "the zero point must be 0")
    return np.asarray(scale, dtype=np.float64), int(bits)


def activation(model, node):
    """``(bits n, scale c, copies T)`` of an activation quantizer whose output is ``c * sum_l
    (2a_l - L + d)`` over ``T`` copies of an ``n``-bit level, with the offset ``d`` of
    :func:`activation_offset`: ``T = 1`` for bipolar quantizers, ``MultiThreshold`` and a
    ``Quant`` read as levels (:func:`level_min`: ``s * q`` is ``(s / 2) * (2a - L + L + 2 *
    q_min)``). A signed narrow-range ``n``-bit
    ``Quant`` outputs ``s * q`` with ``q`` in ``-(2**(n-1) - 1) .. 2**(n-1) - 1``, which is
    ``(s / 2) * sum_l b_l`` over ``T = 2**n - 2`` thermometer bits ``b_l = +1 if q >= l - T/2
    else -1``: imported as ``T`` binary neurons per neuron (levels without an offset, so the
    next layer's dot needs no per-neuron bias)."""
    if node.op_type in ("BipolarQuant", "Quant"):
        scale, bits = quant_scale(model, node, activation=True)
        if scale.size != 1:
            raise node_error(node, f"the activation scale must be one value, not shape "
                                   f"{scale.shape}")
        positive(node, scale, "the scale")
        c = float(scale.reshape(()))
        if level_min(model, node) is not None:
            return bits, c / 2, 1
        return (1, c, 1) if bits == 1 else (1, c / 2, (1 << bits) - 2)
    if node.op_type != "MultiThreshold":
        raise node_error(node, "expected an activation quantizer (BipolarQuant, Quant or "
                               "MultiThreshold)")
    thresholds = model.get_initializer(node.input[1])
    if thresholds is None or thresholds.ndim != 2:
        raise node_error(node, "the thresholds must be a constant (channels, steps) array")
    steps = thresholds.shape[1]
    bits = (steps + 1).bit_length() - 1
    if steps + 1 != 1 << bits:
        raise node_error(node, f"{steps} thresholds per channel; bnnflow needs 2**n - 1")
    activation_offset(model, node)
    return bits, _out_affine(node)[0] / 2, 1


def _out_affine(node):
    attrs = {a.name: a.f for a in node.attribute if a.name in ("out_scale", "out_bias")}
    return attrs.get("out_scale", 1.0), attrs.get("out_bias", 0.0)


def activation_offset(model, node):
    """The offset ``d`` of an activation quantizer's levels (:func:`activation`): ``0`` for
    symmetric levels, ``L + 2 * q_min`` for a ``Quant`` read as levels (:func:`level_min`:
    ``L`` unsigned, ``-1`` signed without narrow range), ``2 * out_bias / out_scale + L`` for a
    ``MultiThreshold`` (an integer: FINN's bipolar levels have ``out_bias = -L * out_scale /
    2``, its unsigned ones ``0``)."""
    q_min = level_min(model, node)
    if q_min is not None:
        return (1 << int(scalar(model, node, 3, "the bit width"))) - 1 + 2 * q_min
    if node.op_type != "MultiThreshold":
        return 0
    steps = model.get_initializer(node.input[1]).shape[1]
    scale, bias = _out_affine(node)
    d = 2 * bias / scale + steps if scale > 0 else 0.5
    if not is_power_of_two(scale / 2) or d != int(d):
        raise node_error(node, f"out_scale {scale:g} and out_bias {bias:g} do not give levels "
                               f"c * (2a - {steps} + d) with an integer d and a power-of-two "
                               f"c; bnnflow needs out_bias a multiple of out_scale / 2 (FINN's "
                               f"bipolar levels: 2 and -1)")
    return int(d)


def activation_levels(model, node, out):
    """The level ``a`` of an activation node's output values: ``0..L``, or ``0..T`` thermometer
    bits set for an ``n``-bit ``Quant`` (:func:`activation`)."""
    if node.op_type in ("BipolarQuant", "Quant"):
        bits, c, copies = activation(model, node)
        q_min = level_min(model, node)
        if q_min is not None:
            return np.rint(out / (2 * c)).astype(np.int64) - q_min
        if copies > 1:
            return np.rint(out / (2 * c)).astype(np.int64) + copies // 2
        return (out > 0).astype(np.int64)
    attrs = {a.name: a.f for a in node.attribute if a.name in ("out_scale", "out_bias")}
    scale, bias = attrs.get("out_scale", 1.0), attrs.get("out_bias", 0.0)
    return np.rint((out - bias) / scale).astype(np.int64)


def ternary_levels(node, raw, scale):
    """The levels -1, 0, +1 that a 2-bit narrow-range weight ``Quant`` gives the initializer
    ``raw``, by qonnx's own arithmetic (its rounding mode included)."""
    from qonnx.custom_op.general.intquant import int_quant

    mode = next((a.s.decode() for a in node.attribute if a.name == "rounding_mode"), "ROUND")
    scale = np.broadcast_to(scale, raw.shape)
    two, one = np.float64(2.0), np.float64(1.0)
    return np.rint(int_quant(raw, scale, np.float64(0.0), two, one, one, mode) / scale)
