"""The input stage of a QONNX graph for :mod:`bnnflow.model.qonnx_import`: the nodes before the
first quantizer, the graph's input for raw images, and the threshold encoding they amount to.

The graph's input for a pixel ``v`` is ``v / input_scale - input_offset`` (float32). The input
stage is run on every integer pixel level ``0..full scale`` and must quantize all positions at
the same levels: a 1-bit quantizer that first fires at pixel ``v*`` becomes a threshold at
``v* / full scale`` (bit 1 where ``pixel >= v*``); a narrow-range 2-bit ``Quant`` (Brevitas'
bnn_pynq ``IN_BIT_WIDTH`` 2) whose level ``k`` is first reached at pixel ``v_k`` becomes a
thermometer code with thresholds ``v_k / full scale``, exact for integer pixels as all data
sets here have.

An ``n``-bit ``Quant`` without narrow range (Brevitas CNV's 8-bit input: ``Mul(2)``, ``Sub(1)``
and a Q1.7 ``Quant``, levels ``q`` in ``-128..127``), or a narrow one of 3 bits or more,
becomes one ``n``-bit element per pixel instead: the level ``a = q -
q_min`` in ``0..2**n - 1``, whatever the map from pixels to ``q`` (the ``pixel_levels``
encoding: the pixel at which each level is first reached). The first layer sees ``q = (v +
d) / 2`` for the conventions' odd value ``v = 2a - L`` and ``d = L + 2 q_min`` (-1 without
narrow range, +1 with it), so its dot is ``(dot_v + d * sum w) / 2``: an offset per neuron that
the fold absorbs (:func:`input_spec` returns ``d``). An unsigned ``n``-bit ``Quant`` (``q_min =
0``, narrow range or not) is read the same way, with ``d = L``; an unsigned 1-bit one is a
threshold whose inputs are worth ``(v + 1) / 2``.

Colour images: the data sets hold ``(H, W, C)`` pixels channels-last, an NCHW graph input
``(1, C, H, W)``; :func:`to_graph_input` transposes.

Encoded inputs (:func:`read_input`): a graph whose input has an integer datatype (``UINTn``, as
FINN feeds images and ``export-qonnx`` writes ``--input-bits 8`` models) takes the ``n``-bit
pixel levels themselves, read by the first layer after elementwise ops that must map the
levels ``0..L`` onto evenly spaced rising values ``alpha * a + beta`` (``export-qonnx``:
``2a - L``; FINN: ``a``). A graph that ``export-qonnx`` wrote says in its ``bnnflow_input``
metadata how its input encodes the pixels (for 1-bit encodings the centered pixels, one per
threshold): that encoding is read back as it is.
"""

import json
from dataclasses import dataclass

import numpy as np

from .artifact import InputSpec
from .encoding import centered, element_bits, encode, make_encoding, validate
from .qonnx_graph import QonnxError, node_error
from .qonnx_import import SHAPE_OPS, data_path, split_path
from .qonnx_quant import (
    activation,
    activation_levels,
    activation_offset,
    level_min,
    positive,
    quant_scale,
)

__all__ = ["GraphInput", "read_input", "image_shape", "input_quantizer", "to_graph_input",
           "input_spec"]


@dataclass(frozen=True)
class GraphInput:
    """A graph's input stage as the importer reads it.

    Attributes
    ----------
    spec : InputSpec
        The model's input.
    scale, offset : float
        The first layer's inputs are worth ``scale * (v + offset)`` for the conventions' ``v``.
    copies : int
        Thermometer copies of each input value that the first layer's weight columns are
        repeated for (1 when the graph's input already has one value per input bit).
    quantized : bool
        The input stage ends in a quantizer (False: the first layer reads an integer input).
    encoded : bool
        The graph's input is the spec's encoded values (levels, or centered pixels) rather
        than ``pixel / input_scale - input_offset``.
    input_scale, input_offset : float
    """

    spec: InputSpec
    scale: float
    offset: float = 0.0
    copies: int = 1
    quantized: bool = True
    encoded: bool = False
    input_scale: float = 1.0
    input_offset: float = 0.0

    def feed(self, model, images):
        """Raw images ``(B, ...)`` as the graph's float32 input."""
        if not self.encoded:
            return to_graph_input(model, images, self.input_scale, self.input_offset)
        enc = self.spec.encoding
        values = encode(enc, images) if element_bits(enc) > 1 else centered(enc, images)
        graph_shape = model.get_tensor_shape(model.graph.input[0].name)
        if self.spec.levels == 1 and len(graph_shape) == 4:
            # one value per pixel into an NCHW input (FINN); export-qonnx's input is flat,
            # channels-last, as the values already are
            values = values.reshape(len(values), *self.spec.shape)
        return to_graph_input(model, values, 1.0, 0.0)


def read_input(model, path, shape, full_scale, input_scale=None, input_offset=0.0):
    """The :class:`GraphInput` of ``model`` for images of ``shape`` with pixels ``0..
    full_scale``: an encoded input (see the module), or the input stage run on every pixel
    level (:func:`input_spec`) for the graph input ``pixel / input_scale - input_offset``
    (``input_scale`` None: ``full_scale``). An integer input's levels are ``round(pixel /
    input_scale * L)``; ``export-qonnx``'s metadata takes neither option."""
    meta = model.get_metadata_prop("bnnflow_input")
    bits = _integer_bits(model)
    if meta is None and bits is None:
        scale_in = full_scale if input_scale is None else input_scale
        _, in_act = input_quantizer(model, path)
        spec, scale, offset = input_spec(model, in_act, shape, full_scale, scale_in,
                                         input_offset)
        return GraphInput(spec, scale, offset, spec.levels, input_scale=scale_in,
                          input_offset=input_offset)
    if input_offset or (meta is not None and input_scale is not None):
        what = ("its bnnflow_input metadata (written by export-qonnx) says how it encodes "
                "the pixels" if meta is not None else f"it takes UINT{bits} pixel levels")
        given = "--input-offset" if meta is None else "--input-scale and --input-offset"
        raise QonnxError(f"the graph's input is encoded: {what}; drop {given}")
    spec = _encoded_spec(model, meta, bits, shape,
                         full_scale if input_scale is None else input_scale)
    if spec.bits == 1:
        prelude, in_act = input_quantizer(model, path)
        if any(node.op_type not in SHAPE_OPS for node in prelude):
            raise node_error(prelude[0], "the encoded input (bnnflow_input) must go straight to "
                                         "its quantizer")
        n, scale, copies = activation(model, in_act)
        if (n, copies, activation_offset(model, in_act)) != (1, 1, 0):
            raise node_error(in_act, "the encoded input's quantizer must be 1-bit and signed")
        return GraphInput(spec, scale, encoded=True)
    prelude = split_path(path, quantized_input=False)[0]
    scale, offset = _affine(prelude, model, spec.bits)
    return GraphInput(spec, scale, offset, quantized=False, encoded=True)


def image_shape(model):
    """``(shape, full scale or None)`` of the images the graph takes: its ``bnnflow_input``
    metadata's, or its input's: ``(B, C, H, W)`` is ``(H, W)`` for one channel and ``(H, W,
    C)`` for colour, any other ``(B, ...)`` is what follows the batch (``(B, K)``: ``(K,)``)."""
    meta = model.get_metadata_prop("bnnflow_input")
    if meta is not None:
        try:
            info = json.loads(meta)
            return tuple(int(s) for s in info["shape"]), float(info["encoding"]["scale"])
        except (ValueError, KeyError, TypeError) as e:
            raise QonnxError(f"the graph's bnnflow_input metadata is not an input bnnflow "
                             f"reads ({e}); re-export it with bnnflow export-qonnx") from None
    # load_graph checked the sizes after the batch, which may be symbolic (0 here).
    shape = model.get_tensor_shape(model.graph.input[0].name)
    if len(shape) == 4:
        c, h, w = (int(d) for d in shape[1:])
        return ((h, w) if c == 1 else (h, w, c)), None
    return tuple(int(d) for d in shape[1:]), None


def _integer_bits(model):
    """``n`` of a graph input with datatype ``UINTn`` (2..8), else None."""
    name = model.get_tensor_datatype(model.graph.input[0].name).name
    if name.startswith("UINT") and name[4:].isdigit() and 2 <= int(name[4:]) <= 8:
        return int(name[4:])
    return None


def _encoded_spec(model, meta, bits, shape, full_scale):
    """The :class:`InputSpec` of an encoded input: the ``bnnflow_input`` metadata's, or
    ``n``-bit pixels at the data set's full scale."""
    graph_shape = model.get_tensor_shape(model.graph.input[0].name)
    try:
        if meta is not None:
            info = json.loads(meta)
            enc, meta_shape = info["encoding"], tuple(int(s) for s in info["shape"])
            spec = InputSpec(width=int(np.prod(meta_shape)) * validate(enc), shape=meta_shape,
                             encoding=enc)
        else:
            spec = InputSpec(width=int(np.prod(shape)), shape=tuple(int(s) for s in shape),
                             encoding={"kind": "pixels", "scale": float(full_scale),
                                       "bits": bits})
        spec.check()
    except (ValueError, KeyError, TypeError) as e:
        source = ("its bnnflow_input metadata" if meta is not None
                  else f"UINT{bits} pixels at full scale {full_scale:g}")
        raise QonnxError(f"the graph's encoded input ({source}) is not an input bnnflow reads "
                         f"({e}); re-export it with bnnflow export-qonnx") from None
    if shape is not None and int(np.prod(shape)) != int(np.prod(spec.shape)):
        raise QonnxError(f"the graph's input encodes images of shape {list(spec.shape)}, the "
                         f"data set's are {list(shape)}; choose the data set the network was "
                         f"trained on with --dataset")
    if int(np.prod(graph_shape[1:])) != spec.width:
        raise QonnxError(f"the graph's input {graph_shape} holds {int(np.prod(graph_shape[1:]))} "
                         f"values per image, its encoded input {spec.width}; choose the data "
                         f"set the network was trained on with --dataset")
    if bits is not None and spec.bits != bits:
        raise QonnxError(f"the graph's input is UINT{bits}, its bnnflow_input metadata says "
                         f"{spec.bits}-bit; re-export it with bnnflow export-qonnx")
    return spec


def _affine(prelude, model, bits):
    """``(scale, offset)`` of the first layer's inputs when the elementwise ops of
    ``prelude`` map the levels ``a = 0..L`` to ``alpha * a + beta``: ``alpha / 2`` and ``L + 2
    beta / alpha`` (``alpha * a + beta = (alpha / 2) * (v + L + 2 beta / alpha)``)."""
    top = (1 << bits) - 1
    a = np.arange(top + 1, dtype=np.float32)
    values = a.copy()
    for node in prelude:
        if node.op_type in SHAPE_OPS:
            continue
        c = model.get_initializer(node.input[1]) if node.op_type in _ARITH else None
        if c is None or np.size(c) != 1:
            raise node_error(node, "the input stage of an integer input may only scale and "
                                   "shift every level alike (Mul, Add, Sub, Div by scalar "
                                   "constants)")
        values = _ARITH[node.op_type](values, np.float32(np.asarray(c).reshape(())))
    values = values.astype(np.float64)
    alpha, beta = values[1] - values[0], values[0]
    if not alpha > 0 or not np.array_equal(values, alpha * a.astype(np.float64) + beta):
        raise QonnxError(f"the input stage maps the {bits}-bit levels to values that are not "
                         f"evenly spaced and rising ({values[:3].tolist()}, ...); bnnflow "
                         f"reads n-bit inputs as the levels 2a - {top}")
    return alpha / 2, top + 2 * beta / alpha


#: The elementwise ops of an integer input's stage, as float32 numpy arithmetic.
_ARITH = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.divide}


def input_quantizer(model, path=None):
    """``(prelude nodes, input quantizer node)`` of the graph's input stage."""
    prelude, in_act, _ = split_path(path or data_path(model))
    for node in prelude:
        if node.op_type in _ARITH:              # BatchNormalization and Relu take no operand
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
    # the quantizers read as n-bit levels everywhere (a narrow 2-bit one stays a thermometer
    # code of 2 bits)
    return level_min(model, in_act) is not None


def _element_scale(model, in_act):
    """``(scale c, bits n)`` of an ``n``-bit input ``Quant`` (one positive scale)."""
    scale, bits = quant_scale(model, in_act, activation=True)
    if scale.size != 1:
        raise node_error(in_act, f"the input scale must be one value, not shape {scale.shape}")
    positive(in_act, scale, "the scale")
    return float(scale.reshape(())), bits


def _pixel_levels(model, in_act, reached_q, full_scale, scale, bits):
    """The ``pixel_levels`` encoding of the levels ``q`` (per integer pixel, one column) of an
    ``n``-bit input ``Quant`` of ``scale`` and ``bits``; returns ``(encoding, input scale c /
    2, offset d)``."""
    top = (1 << bits) - 1
    a = reached_q - level_min(model, in_act)
    cuts = [int(np.argmax(a >= k)) if np.any(a >= k) else len(a) for k in range(1, top + 1)]
    encoding = {"kind": "pixel_levels", "scale": float(full_scale), "bits": bits,
                "thresholds": [v / float(full_scale) for v in cuts]}
    return encoding, scale / 2, activation_offset(model, in_act)


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
    if element:
        c, n = _element_scale(model, in_act)
    else:
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
        reached = np.rint(out.reshape(len(levels), -1) / c)
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
    offset = 0 if element else activation_offset(model, in_act)
    if element:
        encoding, scale, offset = _pixel_levels(model, in_act, col.astype(np.int64),
                                                full_scale, c, n)
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
