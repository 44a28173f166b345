"""QONNX nodes of conv and max-pool layers for :mod:`bnnflow.model.qonnx_export`.

Conv layers are written in FINN's lowered form, on NHWC tensors (channels-last, as the
conventions' feature maps)::

    Im2Col                 (1, H, W, Cin) -> (1, Ho, Wo, kh * kw * Cin), each window in
                           (kh, kw, Cin) order, the order of the weights; the layer's
                           stride, and its padding: pad_amount p on every side, pad_value
                           the value 2c - L of its pad code c (-1 or +1 for bits)
    MatMul(a, W)           W (kh * kw * Cin, Cout): +1 / -1, ternary weights also 0
    MultiThreshold         as a dense layer's (qonnx_export), data_layout NHWC: 2a - L
    MaxPoolNHWC            the maximum of each window: the OR of bits (+-1), or the highest
                           level, as the golden model's max-pool

A dense layer after a map reads it through a ``Reshape`` to ``(1, H * W * C)``: the
channels-last flattening of the golden model.
"""

import numpy as np

from .qonnx_graph import QONNX_DOMAIN

__all__ = ["CONV_KINDS", "MAP_KINDS", "conv_nodes", "pool_nodes", "reshape_node"]

CONV_KINDS = ("binary_conv2d", "ternary_conv2d")
MAP_KINDS = (*CONV_KINDS, "maxpool2d")


def reshape_node(helper, a, shape, bits, name, inits, shapes):
    """A ``Reshape`` of tensor ``a`` (``bits``-bit values) to ``shape``; returns ``(node,
    output name)``."""
    inits[f"{name}_shape"] = np.asarray(shape, dtype=np.int64)
    out = f"{name}_out"
    shapes[out] = (tuple(shape), bits)
    return helper.make_node("Reshape", [a, f"{name}_shape"], [out], name=name), out


def conv_nodes(helper, layer, a, i, inits, shapes, weights):
    """``Im2Col`` and ``MatMul`` of conv layer ``i`` reading the NHWC tensor ``a``; returns
    ``(nodes, dot product tensor)`` (its ``MultiThreshold`` is a dense layer's, NHWC).

    ``weights`` ``(K, Cout)`` is the float32 array :mod:`~bnnflow.model.qonnx_export` makes
    for dense layers too. The shape of each new tensor and the bits of its values (``None``:
    dot products) go into ``shapes`` (qonnx infers shapes after an ``Im2Col`` or a
    ``MaxPoolNHWC`` only from shapes it is given, and ``Im2Col`` reads its input's datatype).
    """
    h, w, c = layer.in_shape
    kh, kw = layer.kernel
    cols, dot = f"conv{i}_cols", f"conv{i}_dot"
    inits[f"W{i}"] = weights
    ho, wo, cout = layer.out_shape
    shapes[cols] = ((1, ho, wo, kh * kw * c), layer.in_bits)
    shapes[dot] = ((1, ho, wo, cout), None)
    # qonnx pads with pad_value as it is: the value of the code in this graph's domain, where
    # every map holds 2a - L (the padded positions are then inputs like any other); written
    # only for padded layers, so unpadded graphs stay as they were
    pad = {"pad_value": 2 * layer.pad_value - ((1 << layer.in_bits) - 1)} if layer.pad else {}
    return [
        helper.make_node("Im2Col", [a], [cols], domain=QONNX_DOMAIN, name=f"conv{i}_im2col",
                         stride=[layer.stride] * 2, kernel_size=[kh, kw],
                         input_shape=f"(1, {h}, {w}, {c})", pad_amount=[layer.pad] * 4,
                         **pad),
        helper.make_node("MatMul", [cols, f"W{i}"], [dot], name=f"conv{i}_matmul"),
    ], dot


def pool_nodes(helper, layer, a, i, shapes):
    """The ``MaxPoolNHWC`` node of pool layer ``i``; returns ``(nodes, output)``."""
    out = f"pool{i}_out"
    shapes[out] = ((1, *layer.out_shape), layer.bits)
    return [helper.make_node("MaxPoolNHWC", [a], [out], domain=QONNX_DOMAIN,
                             name=f"pool{i}_maxpool", kernel_shape=[layer.window] * 2,
                             strides=[layer.stride] * 2, pads=[0, 0, 0, 0])], out
