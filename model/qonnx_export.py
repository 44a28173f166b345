"""Write a :class:`~bnnflow.model.artifact.BnnModel` as a QONNX graph that qonnx executes.

The graph (ONNX opset 13 plus qonnx's custom ops, batch size 1 as FINN expects)::

    global_in (float32, 1 x K0)  the centered input: pixel / scale - t for each threshold t of
                                 the model's encoding, level-major (encoding.centered)
    BipolarQuant(scale 1)        +1 where the value is >= 0 (sign(0) = +1), else -1
    or, for n-bit pixels (encoding ``pixels``, ``--input-bits 8``):
    global_in (UINTn, 1 x K0)    the pixel levels a = round(pixel / scale * L) (encoding.encode),
                                 0..L with L = 2**n - 1, as FINN's 8-bit image inputs
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

Every value is an integer well inside float32's exact range, so executing the graph gives the
golden model's popcounts exactly. Conv models are refused (one line).
"""

import json

import numpy as np

from .artifact import model_checksum
from .conventions import argmax_lowest
from .encoding import centered, element_bits, encode
from .qonnx_graph import QONNX_DOMAIN, QonnxError

__all__ = ["export_graph", "graph_inputs", "run_exported"]

_INPUT = "global_in"
_SCORES = "popcounts"
_CLASS = "class"


def _check(model):
    if model.input.encoding["kind"] not in ("threshold", "thermometer", "pixels"):
        raise QonnxError(f"the model's input encoding is {model.input.encoding['kind']!r}; "
                         f"export-qonnx writes threshold, thermometer and pixels inputs")
    for layer in model.layers:
        if layer.kind not in ("binary_dense", "ternary_dense"):
            raise QonnxError(f"layer {layer.name} ({layer.kind}): conv models are not "
                             f"exported to QONNX yet; export-qonnx writes dense (MLP) models")


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
    return np.full(layer.out_width, layer.max_count, dtype=np.int64)


def _layer_nodes(helper, layer, a, i, inits):
    """Nodes of hidden layer ``i`` reading tensor ``a``; returns ``(nodes, output name)``."""
    inits[f"W{i}"] = _weights(layer)
    dot = f"fc{i}_dot"
    nodes = [helper.make_node("MatMul", [a, f"W{i}"], [dot], name=f"fc{i}_matmul")]
    steps = layer.thresholds.shape[1]
    counts = _counts(layer)
    inits[f"T{i}"] = (2 * layer.thresholds - counts[:, None]).astype(np.float32)
    out = f"fc{i}_act"
    dtype = "BIPOLAR" if steps == 1 else f"INT{layer.activation_bits + 1}"
    nodes.append(helper.make_node("MultiThreshold", [dot, f"T{i}"], [out],
                                  domain=QONNX_DOMAIN, name=f"fc{i}_threshold",
                                  out_dtype=dtype, out_scale=2.0, out_bias=float(-steps),
                                  data_layout="NC"))
    return nodes, out


def export_graph(model, argmax=False):
    """The QONNX graph of ``model`` as a :class:`~qonnx.core.modelwrapper.ModelWrapper`.

    Parameters
    ----------
    model : BnnModel
        A dense model (``binary_dense`` and ``ternary_dense`` layers) with a threshold,
        thermometer or n-bit pixels input.
    argmax : bool
        End with an ``ArgMax`` node whose int64 output ``class`` is the graph's output;
        otherwise the output is ``popcounts``.

    Raises
    ------
    QonnxError
        A conv or pool layer.
    """
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    _check(model)
    inits, nodes, a = _input_nodes(helper, model.input.encoding)
    for i, layer in enumerate(model.layers[:-1]):
        more, a = _layer_nodes(helper, layer, a, i, inits)
        nodes += more
    i, last = len(model.layers) - 1, model.layers[-1]
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
        initializer=[helper.make_tensor(name, TensorProto.FLOAT, np.shape(v),
                                        np.asarray(v, np.float32).ravel())
                     for name, v in inits.items()])
    proto = helper.make_model(graph, producer_name="bnnflow",
                              opset_imports=[helper.make_opsetid("", 13),
                                             helper.make_opsetid(QONNX_DOMAIN, 1)])
    wrapper = ModelWrapper(proto).transform(InferShapes())
    for j, layer in enumerate(model.layers):
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
    from .qonnx_graph import execute_context, with_batch

    x = graph_inputs(model, images)
    context = execute_context(with_batch(wrapper, len(x)), x)
    popcounts = np.asarray(context[_SCORES]).reshape(len(x), -1)
    if _CLASS in context:
        classes = np.asarray(context[_CLASS]).reshape(-1).astype(np.int64)
    else:
        classes = argmax_lowest(popcounts)
    return popcounts, classes
