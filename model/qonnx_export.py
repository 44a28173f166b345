"""Write a :class:`~bnnflow.model.artifact.BnnModel` as a QONNX graph that qonnx executes.

The graph (ONNX opset 13 plus qonnx's custom ops, batch size 1 as FINN expects)::

    global_in (float32, 1 x K0)  the centered input: pixel / scale - t for each threshold t of
                                 the model's encoding, level-major (encoding.centered)
    BipolarQuant(scale 1)        +1 where the value is >= 0 (sign(0) = +1), else -1
    or, for n-bit pixels (encoding ``pixels``, ``--input-bits 8``, or ``pixel_levels``):
    global_in (UINTn, 1 x K0)    the pixel levels a = round(pixel / scale * L), or a's table
                                 (encoding.encode), 0..L with L = 2**n - 1, as FINN's 8-bit
                                 image inputs
    Mul(2), Add(-L)              2a - L, the odd levels of the conventions
    per hidden layer i:
      MatMul(a, W_i)             W_i (K, N): +1 / -1 (BIPOLAR), ternary weights also 0; the
                                 result is dot = 2p - L*K (2p - m for a ternary neuron with m
                                 live weights)
      MultiThreshold             thresholds 2T - L*K per neuron (the popcount rule p >= T on
                                 the dot), out_scale 2, out_bias -L: the level a in 0..L as
                                 2a - L, +-1 for binary activations
    output layer:
      MatMul, Add(L*K), Mul(0.5) popcounts (float32 integers, exact below 2**24)
      ArgMax (optional)          the class, the first maximum (select_last_index 0): the
                                 lowest index on ties, as the golden model

Conv and max-pool layers are FINN's lowered NHWC form (:mod:`bnnflow.model.qonnx_conv`:
``Im2Col``, ``MatMul``, ``MultiThreshold``, ``MaxPoolNHWC``), with ``Reshape`` nodes between
flat vectors and maps.

Every value is an integer well inside float32's exact range, so executing the graph gives the
golden model's popcounts exactly.
"""

import json

import numpy as np

from .artifact import model_checksum
from .conventions import argmax_lowest
from .encoding import centered, element_bits, encode
from .qonnx_conv import CONV_KINDS, MAP_KINDS, conv_nodes, pool_nodes, reshape_node
from .qonnx_graph import QONNX_DOMAIN, QonnxError

__all__ = ["export_graph", "graph_inputs", "run_exported"]

_INPUT = "global_in"
_SCORES = "popcounts"
_CLASS = "class"


def _check(model):
    kind = model.input.encoding["kind"]
    if kind not in ("threshold", "thermometer", "pixels", "pixel_levels"):
        raise QonnxError(f"the model's input encoding is {kind!r}; "
                         f"export-qonnx writes threshold, thermometer and pixels inputs")
    for layer in model.layers:
        if layer.kind not in ("binary_dense", "ternary_dense", *MAP_KINDS):
            raise QonnxError(f"layer {layer.name} ({layer.kind}): export-qonnx writes dense, "
                             f"conv and max-pool layers, not {layer.kind}")


def _weights(layer):
    """``(K, N)`` float32 weights: +-1, and 0 where a ternary mask is 0."""
    w = layer.weights.astype(np.float32) * 2 - 1
    mask = getattr(layer, "mask", None)
    if mask is not None:
        w = w * mask
    return np.ascontiguousarray(w.T)


def _counts(layer):
    """The largest popcount of each neuron: ``L*K``, or ``L*m`` for ``m`` live ternary
    weights."""
    mask = getattr(layer, "mask", None)
    if mask is not None:
        top = (1 << layer.in_bits) - 1
        return top * mask.sum(axis=1).astype(np.int64)
    return np.full(layer.neurons, layer.max_count, dtype=np.int64)


def _dot_thresholds(layer):
    """Thresholds on the dot product ``2p - L*K`` (``2p - L*m`` for ternary neurons)."""
    return (2 * layer.thresholds - _counts(layer)[:, None]).astype(np.float32)


def _layer_nodes(helper, layer, a, i, inits, shapes, is_map):
    """Nodes of hidden layer ``i`` reading tensor ``a`` (an NHWC map when ``is_map``);
    returns ``(nodes, output name, whether the output is a map)``."""
    if layer.kind == "maxpool2d":
        return (*pool_nodes(helper, layer, a, i, shapes), True)
    pre = []
    if not is_map and layer.kind in CONV_KINDS:
        node, a = reshape_node(helper, a, (1, *layer.in_shape), layer.in_bits, f"map{i}",
                               inits, shapes)
        pre.append(node)
    if layer.kind in CONV_KINDS:
        nodes, dot = conv_nodes(helper, layer, a, i, inits, shapes, _weights(layer))
        node, out = _threshold_node(helper, layer, dot, f"conv{i}", i, "NHWC", inits)
        shapes[out] = (shapes[dot][0], layer.activation_bits)
        return pre + nodes + [node], out, True
    if is_map:
        node, a = reshape_node(helper, a, (1, layer.in_width), layer.in_bits, f"flat{i}",
                               inits, shapes)
        pre.append(node)
    inits[f"W{i}"] = _weights(layer)
    matmul = helper.make_node("MatMul", [a, f"W{i}"], [f"fc{i}_dot"], name=f"fc{i}_matmul")
    node, out = _threshold_node(helper, layer, f"fc{i}_dot", f"fc{i}", i, "NC", inits)
    return pre + [matmul, node], out, False


def _threshold_node(helper, layer, dot, prefix, i, layout, inits):
    """The ``MultiThreshold`` of hidden layer ``i`` on its dot products (``data_layout``
    ``layout``): the level ``a`` as ``2a - L``; returns ``(node, output name)``."""
    inits[f"T{i}"] = _dot_thresholds(layer)
    out = f"{prefix}_act"
    return helper.make_node("MultiThreshold", [dot, f"T{i}"], [out], domain=QONNX_DOMAIN,
                            name=f"{prefix}_threshold",
                            out_dtype=_datatype(layer.activation_bits), out_scale=2.0,
                            out_bias=float(-layer.thresholds.shape[1]),
                            data_layout=layout), out


def export_graph(model, argmax=False):
    """The QONNX graph of ``model`` as a :class:`~qonnx.core.modelwrapper.ModelWrapper`.

    Parameters
    ----------
    model : BnnModel
        Dense, conv and max-pool layers (binary or ternary weights, n-bit activations) with a
        threshold, thermometer or n-bit pixels input.
    argmax : bool
        End with an ``ArgMax`` node whose int64 output ``class`` is the graph's output;
        otherwise the output is ``popcounts``.

    Raises
    ------
    QonnxError
        A layer kind or input encoding that has no QONNX form here.
    """
    from onnx import TensorProto, helper, numpy_helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    _check(model)
    inits, nodes, a = _input_nodes(helper, model.input.encoding)
    is_map, shapes = False, {}
    for i, layer in enumerate(model.layers[:-1]):
        more, a, is_map = _layer_nodes(helper, layer, a, i, inits, shapes, is_map)
        nodes += more
    i, last = len(model.layers) - 1, model.layers[-1]
    if is_map:
        node, a = reshape_node(helper, a, (1, last.in_width), last.in_bits, f"flat{i}", inits,
                               shapes)
        nodes.append(node)
    inits[f"W{i}"] = _weights(last)
    inits["count"] = np.float32(last.max_count)
    inits["half"] = np.float32(0.5)
    nodes += [helper.make_node("MatMul", [a, f"W{i}"], [f"fc{i}_dot"], name=f"fc{i}_matmul"),
              helper.make_node("Add", [f"fc{i}_dot", "count"], [f"fc{i}_sum"],
                               name="popcount_add"),
              helper.make_node("Mul", [f"fc{i}_sum", "half"], [_SCORES], name="popcount_mul")]
    outputs = [helper.make_tensor_value_info(_SCORES, TensorProto.FLOAT,
                                             [1, model.num_classes])]
    if argmax:
        nodes.append(helper.make_node("ArgMax", [_SCORES], [_CLASS], name="argmax", axis=1,
                                      keepdims=1, select_last_index=0))
        outputs = [helper.make_tensor_value_info(_CLASS, TensorProto.INT64, [1, 1])]
    graph = helper.make_graph(
        nodes, "bnnflow", [helper.make_tensor_value_info(_INPUT, TensorProto.FLOAT,
                                                         [1, model.input.width])], outputs,
        initializer=[numpy_helper.from_array(_initializer(v), name)
                     for name, v in inits.items()],
        value_info=[helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))
                    for name, (shape, _) in shapes.items()])
    proto = helper.make_model(graph, producer_name="bnnflow",
                              opset_imports=[helper.make_opsetid("", 13),
                                             helper.make_opsetid(QONNX_DOMAIN, 1)])
    wrapper = ModelWrapper(proto).transform(InferShapes())
    for name, (_, bits) in shapes.items():
        if bits is not None:
            wrapper.set_tensor_datatype(name, DataType[_datatype(bits)])
    for j, layer in enumerate(model.layers):
        if layer.kind == "maxpool2d":
            continue
        kind = "TERNARY" if getattr(layer, "mask", None) is not None else "BIPOLAR"
        wrapper.set_tensor_datatype(f"W{j}", DataType[kind])
    bits = element_bits(model.input.encoding)
    if bits > 1:
        wrapper.set_tensor_datatype(_INPUT, DataType[f"UINT{bits}"])
        global_in = f"pixel level round(pixel / scale * {(1 << bits) - 1}) (UINT{bits})"
    else:
        wrapper.set_tensor_datatype("x_bipolar", DataType["BIPOLAR"])
        global_in = "pixel / scale - threshold per threshold, level-major (float32)"
    manifest, _ = model.manifest()
    wrapper.set_metadata_prop("bnnflow_model", model_checksum(manifest))
    wrapper.set_metadata_prop("bnnflow_input", json.dumps({
        "encoding": model.input.encoding, "shape": list(model.input.shape),
        "global_in": global_in}))
    return wrapper


def _datatype(bits):
    """The qonnx datatype of ``n``-bit values as the odd levels ``2a - L``."""
    return "BIPOLAR" if bits == 1 else f"INT{bits + 1}"


def _initializer(value):
    """An initializer's array: int64 shapes stay int64, everything else is float32."""
    value = np.asarray(value)
    return value if value.dtype == np.int64 else value.astype(np.float32)


def _input_nodes(helper, encoding):
    """``(initializers, nodes, tensor)`` turning ``global_in`` into the first layer's values:
    ``BipolarQuant`` of the centered pixels (+-1), or ``2a - L`` of n-bit pixel levels."""
    bits = element_bits(encoding)
    if bits == 1:
        return ({"one": np.float32(1.0)},
                [helper.make_node("BipolarQuant", [_INPUT, "one"], ["x_bipolar"],
                                  domain=QONNX_DOMAIN, name="input_quant")], "x_bipolar")
    inits = {"two": np.float32(2.0), "minus_top": np.float32(-((1 << bits) - 1))}
    nodes = [helper.make_node("Mul", [_INPUT, "two"], ["x_twice"], name="input_mul"),
             helper.make_node("Add", ["x_twice", "minus_top"], ["x_levels"], name="input_add")]
    return inits, nodes, "x_levels"


def graph_inputs(model, images):
    """The exported graph's input for raw images, float32 ``(B, K0)``: ``centered`` pixels, or
    the pixel levels of an n-bit ``pixels`` encoding."""
    if element_bits(model.input.encoding) > 1:
        return encode(model.input.encoding, images).astype(np.float32)
    return centered(model.input.encoding, images).astype(np.float32)


def run_exported(wrapper, model, images):
    """Run an exported graph on raw images with qonnx's executor.

    Returns
    -------
    popcounts : float array ``(B, C)``
    classes : int64 array ``(B,)``
        The ``ArgMax`` node's output when the graph has one, else the argmax of the popcounts.
    """
    from .qonnx_batch import batched
    from .qonnx_graph import execute_context

    x = graph_inputs(model, images)
    # qonnx's Im2Col is right for one image only: batched() runs it image by image
    context = execute_context(batched(wrapper, len(x)), x)
    popcounts = np.asarray(context[_SCORES]).reshape(-1, model.num_classes)
    if _CLASS in context:
        return popcounts, np.asarray(context[_CLASS]).reshape(-1).astype(np.int64)
    return popcounts, argmax_lowest(popcounts)
