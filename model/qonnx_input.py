"""The input stage of a QONNX graph for :mod:`bnnflow.model.qonnx_import`: the nodes before the
first quantizer, the graph's input for raw images, and the threshold encoding they amount to.

The graph's input for a pixel ``v`` is ``v / input_scale - input_offset`` (float32). The input
stage is run on every integer pixel level ``0..full scale`` and must quantize all positions at
the same levels: a 1-bit quantizer that first fires at pixel ``v*`` becomes a threshold at
``v* / full scale`` (bit 1 where ``pixel >= v*``); a narrow-range n-bit ``Quant`` (Brevitas'
bnn_pynq ``IN_BIT_WIDTH`` 2) whose level ``k`` is first reached at pixel ``v_k`` becomes a
thermometer code with thresholds ``v_k / full scale``, exact for integer pixels as all data
sets here have.
"""

import numpy as np

from .artifact import InputSpec
from .encoding import make_encoding
from .qonnx_graph import QonnxError, node_error
from .qonnx_import import ELEMENTWISE_OPS, data_path, split_path
from .qonnx_quant import activation, activation_levels

__all__ = ["input_quantizer", "to_graph_input", "input_spec"]


def input_quantizer(model, path=None):
    """``(prelude nodes, input quantizer node)`` of the graph's input stage."""
    prelude, in_act, _ = split_path(path or data_path(model))
    for node in prelude:
        if node.op_type in ELEMENTWISE_OPS and node.op_type != "BatchNormalization":
            other = model.get_initializer(node.input[1])
            if other is None:
                raise node_error(node, "the input stage may only use constants")
    return prelude, in_act


def to_graph_input(model, images, input_scale, input_offset):
    """Raw images ``(B, ...)`` as the graph's float32 input ``pixel / scale - offset``."""
    images = np.asarray(images, dtype=np.float64)
    shape = model.get_tensor_shape(model.graph.input[0].name)
    flat = images.reshape(images.shape[0], -1) / float(input_scale) - float(input_offset)
    return flat.astype(np.float32).reshape(images.shape[0], *shape[1:])


def input_spec(model, in_act, shape, full_scale, input_scale, input_offset):
    """The :class:`InputSpec` of the graph's input stage, found by running it on every integer
    pixel level ``0..full_scale``; returns ``(spec, input quantizer scale)``.

    Raises
    ------
    QonnxError
        The graph's input size differs from the images', the quantizer is neither 1-bit nor
        a narrow-range n-bit ``Quant``, or the stage does not quantize every position at the
        same pixel levels.
    """
    from .qonnx_graph import execute, with_batch

    graph_shape = model.get_tensor_shape(model.graph.input[0].name)
    per_image, pixels = int(np.prod(graph_shape[1:])), int(np.prod(shape))
    if per_image != pixels:
        raise QonnxError(f"the graph's input {graph_shape} holds {per_image} values per image, "
                         f"but the data set's images have {pixels} pixels ({shape}); choose "
                         f"the data set the network was trained on with --dataset")
    bits, scale, copies = activation(model, in_act)
    if bits != 1:
        raise node_error(in_act, f"the input quantizer has {bits} bits; bnnflow imports a "
                                 f"binarized input, or a narrow-range n-bit Quant as a "
                                 f"thermometer code")
    levels = np.arange(int(full_scale) + 1, dtype=np.float64)
    images = np.broadcast_to(levels[:, None], (len(levels), pixels))
    x = to_graph_input(model, images, input_scale, input_offset)
    out = execute(with_batch(model, len(levels)), x, end_node=in_act)
    reached = activation_levels(model, in_act, out.reshape(len(levels), -1))
    if np.any(reached != reached[:, :1]):
        raise node_error(in_act, "the input stage quantizes pixel positions at different "
                                 "levels; bnnflow's input encoding has the same thresholds "
                                 "for every pixel")
    col = reached[:, 0]
    if np.any(np.diff(col) < 0):
        raise node_error(in_act, "the input level falls as the pixel rises; bnnflow's input "
                                 "encoding needs each bit 1 at and above one pixel level")
    cuts = [int(np.argmax(col >= k)) if np.any(col >= k) else len(levels)
            for k in range(1, copies + 1)]
    encoding = make_encoding(full_scale, [v / float(full_scale) for v in cuts])
    try:
        spec = InputSpec(width=pixels * copies, shape=tuple(int(s) for s in shape),
                         encoding=encoding)
        spec.check()
    except ValueError as e:
        raise node_error(in_act, f"its levels are reached at pixels {cuts} of "
                                 f"{full_scale:g}, which no input encoding of bnnflow "
                                 f"reproduces ({e})") from None
    return spec, scale
