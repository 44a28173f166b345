"""Conv and max-pool layers of a QONNX graph (Brevitas ``QuantConv2d`` and ``MaxPool2d``, NCHW),
for :mod:`bnnflow.model.qonnx_import`.

* ``Conv``: equal strides, no dilation, one group; its weights ``(Cout, Cin, kh, kw)`` become
  rows in the ``(kh, kw, Cin)`` window order of the conventions. Padding ``p`` alike on all
  four sides (below the kernel) holds 0, which is the value of an input code only where the
  map's levels have an offset (:func:`pad_code`): code 0 of unsigned levels (``QuantReLU``),
  code 128 of Brevitas CNV's 8-bit input; a +-1 map has no 0 and is refused. FINN's
  ``Im2Col`` pads with its ``pad_value``, which must be an input code's value likewise. Its
  BatchNorm and quantizer are folded into thresholds as for a dense layer: a channel is a
  neuron, and ``BatchNormalization`` normalizes axis 1 of a ``(popcounts, channels)`` probe as
  of an NCHW map.
* ``MaxPool`` after the activation: square window, no padding; the maximum of +-1 values is
  the OR of their bits, of levels the highest level, as the golden model's ``maxpool2d``.
* A ``MatMul``/``Gemm`` after a map reads it flattened in NCHW order (``C, H, W``); the
  conventions flatten channels-last (``H, W, C``), so its weight columns are reordered.
* Narrow-range n-bit activations (thermometer copies, :mod:`bnnflow.model.qonnx_quant`) make
  ``copies`` channels of each channel, level-major (``l * C + c``); a max-pool keeps them (the
  maximum of thermometer codes is taken bit by bit), and the next layer repeats its columns
  per channel (:func:`repeat_channels`). Ternary weights make ``ternary_conv2d``.
"""

import math

import numpy as np

from .conv import Conv2dLayer
from .pool import MaxPool2dLayer
from .qonnx_graph import QonnxError, node_error
from .ternary_conv import TernaryConv2dLayer

__all__ = ["MAP_OPS", "conv_kernel", "pad_code", "window_rows", "hwc_columns", "map_shape",
           "lowered_conv", "node_conv_geometry", "repeat_channels", "conv_layer", "pool_layer"]

#: Ops that this module builds.
MAP_OPS = ("Conv", "MaxPool")


def _ints(node, name, default):
    values = next((list(a.ints) for a in node.attribute if a.name == name), [])
    return values or list(default)


def _int(node, name, default):
    return next((a.i for a in node.attribute if a.name == name), default)


def _check_auto_pad(node):
    pad = next((a.s.decode() for a in node.attribute if a.name == "auto_pad"), "NOTSET")
    if pad not in ("NOTSET", "VALID"):
        raise node_error(node, f"auto_pad {pad}; bnnflow builds unpadded windows")


def _window(node, kernel, strides, pads):
    """``((kh, kw), stride, pad)`` from the attributes ``kernel``, ``strides`` and ``pads`` of a
    convolution's window; the strides must be equal, the padding alike on every side and below
    the kernel, and its dilations attribute must say no dilation."""
    size = _ints(node, kernel, ())
    if len(size) != 2:
        raise node_error(node, f"{kernel} {size}; bnnflow builds 2-D convolutions")
    step = _ints(node, strides, [1, 1])
    if len(step) != 2 or step[0] != step[1] or step[0] < 1:
        raise node_error(node, f"{strides} {step}; bnnflow builds convolutions with equal "
                               f"strides along both axes")
    border = _ints(node, pads, [0, 0, 0, 0])
    if len(border) != 4 or len(set(border)) != 1:
        raise node_error(node, f"{pads} {border}; bnnflow pads a convolution alike on all four "
                               f"sides (train the network with one padding p for both axes)")
    if not 0 <= border[0] < min(size):
        raise node_error(node, f"{pads} {border}; bnnflow pads a {size[0]}x{size[1]} convolution "
                               f"by 0..{min(size) - 1} (less than the kernel)")
    dilations = _ints(node, "dilations", [1, 1])
    if dilations != [1, 1]:
        raise node_error(node, f"dilations {dilations}; bnnflow builds convolutions with "
                               f"dilations [1, 1] (train the network without dilation)")
    return tuple(int(k) for k in size), int(step[0]), int(border[0])


def conv_kernel(node):
    """``((kh, kw), stride, pad)`` of a ``Conv`` node (its padding holds 0); unequal strides or
    padding, dilation and more than one group are refused (a bias:
    :func:`~bnnflow.model.qonnx_weights.layer_bias`)."""
    kernel = _window(node, "kernel_shape", "strides", "pads")
    if _int(node, "group", 1) != 1:
        raise node_error(node, f"group {_int(node, 'group', 1)}; bnnflow builds full "
                               f"convolutions (group 1)")
    _check_auto_pad(node)
    return kernel


def pad_code(node, fill, in_bits, scale, offset=0, copies=1):
    """The input code whose value in the graph is ``fill``, the value ``node`` pads its map with.

    A code ``a`` in ``0..L`` (``L = 2**in_bits - 1``) stands for the conventions' ``v = 2a -
    L``; the layer's inputs are worth ``scale * (v + offset)`` each, and a graph value holds
    ``copies`` thermometer bits of one code (a uniform code: every bit alike), so code ``a`` is
    worth ``copies * scale * (2a - L + offset)`` there. Zero padding is a code only where the
    levels have an offset: code 0 of unsigned levels (``offset = L``), code 128 of Brevitas
    CNV's 8-bit input (``offset = -1``); never on a +-1 map.

    Parameters
    ----------
    node : NodeProto
        The ``Conv`` or ``Im2Col`` that pads (named in the error).
    fill : float
        Its padded positions' value: 0 for a ``Conv``, ``pad_value`` for an ``Im2Col``.
    in_bits, scale, offset, copies
        The layer's input bits, scale, offset ``d`` and thermometer copies.

    Raises
    ------
    QonnxError
        ``fill`` is no code's value; the line names the codes' values and the fix.
    """
    top = (1 << in_bits) - 1
    worth = copies * float(scale)
    code = int(np.rint((fill / worth - offset + top) / 2))
    # Scales come from float32 graphs (1/510 times 510 is 1 + 6e-8): equal to a part in 10^6.
    # Codes are 2 * worth apart, and the import checks the executor against the golden model.
    if 0 <= code <= top and math.isclose(worth * (2 * code - top + offset), fill, rel_tol=1e-6,
                                         abs_tol=1e-6 * abs(worth)):
        return code
    values = [worth * (2 * a - top + offset) for a in range(top + 1)]
    shown = ", ".join(f"{v:+g}" for v in (values if top < 4 else values[:2]))
    shown += "" if top < 4 else f", ..., {values[-1]:+g}"
    attr = "pads" if node.op_type == "Conv" else "pad_amount"
    why = ("a +-1 map has no 0 to pad with: train the network with padding=0"
           if fill == 0 and (in_bits, copies, offset) == (1, 1, 0) else
           "train the network with padding=0" if node.op_type == "Conv" else
           "give pad_value the value of an input code")
    given = "the value" if node.op_type == "Conv" else "pad_value"
    raise node_error(node, f"{attr} {_ints(node, attr, [])} with {given} {fill:g}, which no "
                           f"input code has (codes are worth {shown}); {why}")


def window_rows(raw):
    """Conv weights ``(Cout, Cin, kh, kw)`` as rows ``(Cout, kh * kw * Cin)`` in window
    order."""
    return np.ascontiguousarray(raw.transpose(0, 2, 3, 1).reshape(raw.shape[0], -1))


def hwc_columns(rows, shape):
    """Weight rows ``(N, C * H * W)`` over an NCHW-flattened map of ``shape`` ``(H, W, C)``,
    reordered for the channels-last flattening ``(H, W, C)``."""
    h, w, c = shape
    n = rows.shape[0]
    return np.ascontiguousarray(rows.reshape(n, c, h, w).transpose(0, 2, 3, 1).reshape(n, -1))


def map_shape(model, node, copies=1):
    """The channels-last ``(H, W, C)`` of the NCHW map that ``node`` reads (NHWC for FINN's
    ``MaxPoolNHWC``); with thermometer ``copies`` of each value, ``C`` times ``copies``
    (channel ``l * C + c``: level-major)."""
    shape = model.get_tensor_shape(node.input[0])
    layout = "NHWC" if node.op_type == "MaxPoolNHWC" else "NCHW"
    if shape is None or len(shape) != 4:
        raise node_error(node, f"expected an {layout} map as input, not shape {shape}")
    if layout == "NHWC":
        return int(shape[1]), int(shape[2]), int(shape[3]) * copies
    return int(shape[2]), int(shape[3]), int(shape[1]) * copies


def lowered_conv(model, mm):
    """``(in_shape (H, W, C), kernel (kh, kw), stride, pad)`` of a ``MatMul`` that reads FINN's
    ``Im2Col`` (windows in ``(kh, kw, Cin)`` order, the weights' rows: the conventions' order),
    or None for any other ``MatMul``; an ``Im2Col`` with unequal strides or padding, dilation
    or depthwise windows is refused."""
    im2col = model.find_producer(mm.input[0])
    if im2col is None or im2col.op_type != "Im2Col":
        return None
    kernel, stride, pad = _window(im2col, "kernel_size", "stride", "pad_amount")
    if _int(im2col, "depthwise", 0):
        raise node_error(im2col, "depthwise windows; bnnflow builds full convolutions")
    shape = model.get_tensor_shape(im2col.input[0])
    if shape is None or len(shape) != 4:
        raise node_error(im2col, f"expected an NHWC map as input, not shape {shape}")
    return (int(shape[1]), int(shape[2]), int(shape[3])), kernel, stride, pad


def node_conv_geometry(model, mm, in_bits, in_scale, in_offset=0, in_copies=1):
    """The keyword arguments ``in_shape``, ``kernel``, ``stride``, ``pad`` and ``pad_value`` of
    :func:`conv_layer` for a ``Conv`` node or a ``MatMul`` after FINN's ``Im2Col`` whose inputs
    are worth ``in_scale * (v + in_offset)`` (``in_copies`` thermometer bits each), or None for
    a dense layer. A ``Conv`` pads with 0, an ``Im2Col`` with its ``pad_value``: the value of
    the pad code (:func:`pad_code`)."""
    if mm.op_type == "Conv":
        (kernel, stride, pad), node = conv_kernel(mm), mm
        in_shape, fill = map_shape(model, mm, in_copies), 0
    else:
        lowered = lowered_conv(model, mm)
        if lowered is None:
            return None
        in_shape, kernel, stride, pad = lowered
        node = model.find_producer(mm.input[0])
        fill = _int(node, "pad_value", 0)
    code = pad_code(node, fill, in_bits, in_scale, in_offset, in_copies) if pad else 0
    return {"in_shape": in_shape, "kernel": kernel, "stride": stride, "pad": pad,
            "pad_value": code}


def repeat_channels(rows, channels, copies):
    """Rows ``(N, P * C)`` over positions of ``C`` channels (window or map order, channels
    last) with each channel's columns repeated for ``copies`` thermometer levels, level-major:
    ``(N, P * copies * C)``."""
    n = rows.shape[0]
    per = rows.reshape(n, -1, channels)
    return np.ascontiguousarray(np.tile(per, (1, 1, copies)).reshape(n, -1))


def conv_layer(name, bits, thresholds, in_bits, in_shape, kernel, stride, mask=None, pad=0,
               pad_value=0):
    """The ``binary_conv2d`` (with ``mask``, ``ternary_conv2d``) layer of a ``Conv`` node's
    folded rows and thresholds."""
    geometry = {"in_bits": in_bits, "stride": stride, "pad": pad, "pad_value": pad_value}
    try:
        if mask is not None:
            return TernaryConv2dLayer(name, in_shape, kernel, bits, thresholds, mask=mask,
                                      **geometry)
        return Conv2dLayer(name, in_shape, kernel, bits, thresholds, **geometry)
    except ValueError as e:
        raise QonnxError(f"conv layer {name}: {e}") from None


def pool_layer(model, node, name, bits, copies=1):
    """The ``maxpool2d`` layer of a ``MaxPool`` node over ``bits``-bit values, its channels
    each ``copies`` thermometer bits (the maximum of thermometer codes is the code of the
    maximum, bit by bit)."""
    window = _ints(node, "kernel_shape", ())
    if len(window) != 2 or window[0] != window[1]:
        raise node_error(node, f"kernel_shape {window}; bnnflow builds square 2-D max-pools")
    strides = _ints(node, "strides", [1, 1])
    if strides[0] != strides[1]:
        raise node_error(node, f"strides {strides}; bnnflow builds equal strides")
    for what, want in (("pads", [0, 0, 0, 0]), ("dilations", [1, 1])):
        got = _ints(node, what, want)
        if got != want:
            raise node_error(node, f"{what} {got}; bnnflow builds max-pools with {what} {want}")
    if _int(node, "ceil_mode", 0):
        raise node_error(node, "ceil_mode 1; bnnflow builds max-pools over whole windows")
    _check_auto_pad(node)
    try:
        return MaxPool2dLayer(name, map_shape(model, node, copies), window[0], strides[0],
                              bits=bits)
    except ValueError as e:
        raise node_error(node, str(e)) from None
