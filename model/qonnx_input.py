"""The input stage of a QONNX graph for :mod:`bnnflow.model.qonnx_import`: the nodes before the
first quantizer, the graph's input for raw images, and the threshold encoding they amount to.

The graph's input for a pixel ``v`` is ``v / input_scale - input_offset`` (float32). The input
stage is run on every integer pixel level ``0..full scale`` and must quantize all positions at
the same levels: a 1-bit quantizer that first fires at pixel ``v*`` becomes a threshold at
``v* / full scale`` (bit 1 where ``pixel >= v*``); a narrow-range n-bit ``Quant`` (Brevitas'
bnn_pynq ``IN_BIT_WIDTH`` 2) whose level ``k`` is first reached at pixel ``v_k`` becomes a
thermometer code with thresholds ``v_k / full scale``, exact for integer pixels as all data
sets here have.

An ``n``-bit ``Quant`` without narrow range (Brevitas CNV's 8-bit input: ``Mul(2)``, ``Sub(1)``
and a Q1.7 ``Quant``, levels ``q`` in ``-128..127``), or a narrow one with more levels than
a thermometer code holds, becomes one ``n``-bit element per pixel instead: the level ``a = q -
q_min`` in ``0..2**n - 1``, whatever the map from pixels to ``q`` (the ``pixel_levels``
encoding: the pixel at which each level is first reached). The first layer sees ``q = (v +
d) / 2`` for the conventions' odd value ``v = 2a - L`` and ``d = L + 2 q_min`` (-1 without
narrow range, +1 with it), so its dot is ``(dot_v + d * sum w) / 2``: an offset per neuron that
the fold absorbs (:func:`input_spec` returns ``d``).

Colour images: the data sets hold ``(H, W, C)`` pixels channels-last, an NCHW graph input
``(1, C, H, W)``; :func:`to_graph_input` transposes.
"""

import numpy as np

from .artifact import InputSpec
from .encoding import MAX_LEVELS, make_encoding
from .qonnx_graph import QonnxError, node_error
from .qonnx_import import ELEMENTWISE_OPS, data_path, split_path
from .qonnx_quant import activation, activation_levels, positive, quant_scale

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
    """Raw images ``(B, ...)`` as the graph's float32 input ``pixel / scale - offset``; colour
    images ``(B, H, W, C)`` go to an NCHW input ``(1, C, H, W)`` transposed."""
    images = np.asarray(images, dtype=np.float64)
    shape = model.get_tensor_shape(model.graph.input[0].name)
    if images.ndim == 4 and images.shape[3] > 1:
        want = (images.shape[3], images.shape[1], images.shape[2])
        if len(shape) != 4 or tuple(shape[1:]) != want:
            raise QonnxError(f"the graph's input {shape} is not the NCHW form (1, "
                             f"{', '.join(map(str, want))}) of the data set's "
                             f"{'x'.join(map(str, images.shape[1:]))} colour images; choose "
                             f"the data set the network was trained on with --dataset")
        images = images.transpose(0, 3, 1, 2)
    flat = images.reshape(images.shape[0], -1) / float(input_scale) - float(input_offset)
    return flat.astype(np.float32).reshape(images.shape[0], *shape[1:])


def _element_input(model, in_act):
    """Whether the input quantizer makes one ``n``-bit element per pixel (see the module)."""
    if in_act.op_type != "Quant":
        return False
    bits = model.get_initializer(in_act.input[3]) if len(in_act.input) > 3 else None
    if bits is None or np.size(bits) != 1 or float(np.asarray(bits).reshape(())) == 1:
        return False
    narrow = next((a.i for a in in_act.attribute if a.name == "narrow"), 0)
    return not narrow or (1 << int(np.asarray(bits).reshape(()))) - 2 > MAX_LEVELS


def _pixel_levels(model, in_act, reached_q, full_scale):
    """The ``pixel_levels`` encoding of the levels ``q`` (per integer pixel, one column) of an
    ``n``-bit input ``Quant``; returns ``(encoding, input scale c / 2, offset d)``."""
    scale, bits = quant_scale(model, in_act, activation=True, graph_input=True)
    if scale.size != 1:
        raise node_error(in_act, f"the input scale must be one value, not shape {scale.shape}")
    positive(in_act, scale, "the scale")
    narrow = next((a.i for a in in_act.attribute if a.name == "narrow"), 0)
    top, q_min = (1 << bits) - 1, -(1 << (bits - 1)) + narrow
    a = reached_q - q_min
    cuts = [int(np.argmax(a >= k)) if np.any(a >= k) else len(a) for k in range(1, top + 1)]
    encoding = {"kind": "pixel_levels", "scale": float(full_scale), "bits": bits,
                "thresholds": [v / float(full_scale) for v in cuts]}
    return encoding, float(scale.reshape(())) / 2, top + 2 * q_min


def input_spec(model, in_act, shape, full_scale, input_scale, input_offset):
    """The :class:`InputSpec` of the graph's input stage, found by running it on every integer
    pixel level ``0..full_scale``; returns ``(spec, input scale, offset d)``: the first layer's
    input value is ``scale * (v + d)`` for the conventions' ``v`` (``+-1``, or ``2a - L`` for an
    ``n``-bit element), ``d = 0`` but for ``n``-bit elements (see the module).

    Raises
    ------
    QonnxError
        The graph's input size differs from the images', the quantizer is not a signed
        ``Quant`` or ``BipolarQuant``, or the stage does not quantize every position at the
        same pixel levels.
    """
    from .qonnx_graph import execute, with_batch

    graph_shape = model.get_tensor_shape(model.graph.input[0].name)
    per_image, pixels = int(np.prod(graph_shape[1:])), int(np.prod(shape))
    if per_image != pixels:
        raise QonnxError(f"the graph's input {graph_shape} holds {per_image} values per image, "
                         f"but the data set's images have {pixels} pixels ({shape}); choose "
                         f"the data set the network was trained on with --dataset")
    element = _element_input(model, in_act)
    if not element:
        bits, scale, copies = activation(model, in_act)
        if bits != 1:
            raise node_error(in_act, f"the input quantizer has {bits} bits; bnnflow imports a "
                                     f"binarized input, a narrow-range n-bit Quant as a "
                                     f"thermometer code, or a signed n-bit Quant as n-bit "
                                     f"pixels")
    levels = np.arange(int(full_scale) + 1, dtype=np.float64)
    images = np.broadcast_to(levels[:, None], (len(levels), pixels))
    x = to_graph_input(model, images.reshape(len(levels), *shape), input_scale, input_offset)
    out = execute(with_batch(model, len(levels)), x, end_node=in_act)
    if element:
        in_scale = quant_scale(model, in_act, activation=True, graph_input=True)[0]
        reached = np.rint(out.reshape(len(levels), -1) / in_scale.reshape(-1)[0])
    else:
        reached = activation_levels(model, in_act, out.reshape(len(levels), -1))
    if np.any(reached != reached[:, :1]):
        raise node_error(in_act, "the input stage quantizes pixel positions at different "
                                 "levels; bnnflow's input encoding has the same thresholds "
                                 "for every pixel")
    col = reached[:, 0]
    if np.any(np.diff(col) < 0):
        raise node_error(in_act, "the input level falls as the pixel rises; bnnflow's input "
                                 "encoding needs each level reached at and above one pixel")
    offset = 0
    if element:
        encoding, scale, offset = _pixel_levels(model, in_act, col.astype(np.int64), full_scale)
        cuts, copies = "", 1
    else:
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
    return spec, scale, offset
