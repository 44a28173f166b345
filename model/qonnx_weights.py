"""The weights of a layer node of a QONNX graph, for :mod:`bnnflow.model.qonnx_import`: a
``MatMul``'s, ``Gemm``'s or ``Conv``'s binary or ternary weights as sign bits (and a mask),
with their scale per output neuron.
"""

import numpy as np

from .qonnx_graph import node_error, run_nodes
from .qonnx_import_conv import conv_kernel, window_rows
from .qonnx_quant import positive, quant_scale, ternary_levels

__all__ = ["weights", "layer_bias", "output_bias_of"]


def weights(model, mm):
    """``(bits (N, K), scale (N,), mask (N, K) or None)`` of a ``MatMul``/``Gemm`` node's
    binary or ternary weights (``mask`` 0 where a weight is 0, its bit then 0), or of a
    ``Conv`` node's (rows in window order)."""
    trans = mm.op_type == "Conv"
    if trans:
        conv_kernel(mm)
    elif mm.op_type == "Gemm":
        attrs = {a.name: a for a in mm.attribute}
        if attrs.get("transA") is not None and attrs["transA"].i:
            raise node_error(mm, "transA must be 0")
        if attrs.get("alpha") is not None and attrs["alpha"].f != 1.0:
            raise node_error(mm, f"alpha must be 1, not {attrs['alpha'].f:g}")
        trans = attrs.get("transB") is not None and attrs["transB"].i
    producer = model.find_producer(mm.input[1])
    if producer is None:
        raw = model.get_initializer(mm.input[1])
        if raw is None:
            raise node_error(mm, "the weights must be constant")
        raw = np.asarray(raw, dtype=np.float64)
        if not np.all(np.isin(raw, (-1.0, 0.0, 1.0))):
            raise node_error(mm, "float weights; bnnflow imports binary and ternary weights (a "
                                 "quantizer on the weights, or -1, 0, +1 values)")
        scale = np.ones(1)
        live = raw != 0 if np.any(raw == 0) else None
    elif producer.op_type in ("BipolarQuant", "Quant"):
        raw = np.asarray(model.get_initializer(producer.input[0]), dtype=np.float64)
        scale, wbits = quant_scale(model, producer)
        positive(producer, scale, "the weight scale")
        if wbits == 2:
            raw = ternary_levels(producer, raw, scale)
            live = raw != 0
        else:
            raw, live = raw / np.broadcast_to(scale, raw.shape), None  # x / scale vs 0
    else:
        raise node_error(mm, f"the weights come from {producer.op_type}; expected a "
                             f"quantizer on an initializer")
    if raw.ndim != (4 if mm.op_type == "Conv" else 2):
        want = "(Cout, Cin, kh, kw)" if mm.op_type == "Conv" else "a matrix"
        raise node_error(mm, f"the weights must be {want}, not shape {raw.shape}")
    scale = np.broadcast_to(scale.reshape(scale.shape if scale.size > 1 else (1,) * raw.ndim),
                            raw.shape)
    mask = np.ones(raw.shape, np.uint8) if live is None else live.astype(np.uint8)
    if mm.op_type == "Conv":
        raw, scale, mask = window_rows(raw), window_rows(scale), window_rows(mask)
    bits = (raw >= 0).astype(np.uint8) * mask           # sign(0) = +1
    if not trans:
        bits, scale, mask = bits.T, scale.T, mask.T
    if np.any(scale != scale[:, :1]):
        raise node_error(mm, "the weight scale must be one value per output neuron")
    return (np.ascontiguousarray(bits), scale[:, 0].copy(),
            None if live is None else np.ascontiguousarray(mask))


def layer_bias(model, mm):
    """The bias of a ``Gemm`` (input C, times ``beta``) or ``Conv`` (input B) node, one value per
    output neuron (float64), or ``None`` when it has none or only zeros. A ``Quant`` of a
    constant (Brevitas' ``Int32Bias``) is evaluated as the graph does."""
    if mm.op_type not in ("Gemm", "Conv") or len(mm.input) < 3 or not mm.input[2]:
        return None
    bias = model.get_initializer(mm.input[2])
    if bias is None:
        producer = model.find_producer(mm.input[2])
        raw = None if producer is None or producer.op_type != "Quant" else \
            model.get_initializer(producer.input[0])
        if raw is None:
            raise node_error(mm, "the bias must be a constant or a Quant of one (Brevitas: "
                                 "bias_quant=None or Int32Bias)")
        bias = run_nodes(model, [producer], producer.input[0], raw)   # the graph's arithmetic
    beta = next((a.f for a in mm.attribute if a.name == "beta"), 1.0) if mm.op_type == "Gemm" \
        else 1.0
    bias = _one_per_output(mm, bias, "the bias has") * beta
    return bias if np.any(bias != 0) else None


def _one_per_output(node, value, what):
    """``value`` (float64) flattened, if its shape gives one value per output or one for all
    (``(N,)``, ``(1, N)``, scalar); a ``(N, 1)`` one broadcasts the outputs to a matrix."""
    value = np.asarray(value, dtype=np.float64)
    if value.ndim > 2 or (value.ndim == 2 and value.shape[0] != 1):
        raise node_error(node, f"{what} shape {value.shape}; a bias has one value per output "
                               f"(shape (N,) or (1, N)) or one for all")
    return value.reshape(-1)


def output_bias_of(model, mm, chain):
    """``(bias or None, rest of chain, the tensor it starts from)`` of the last layer: a
    ``Gemm``'s bias (:func:`layer_bias`), or for a ``MatMul`` an ``Add`` right after it of a
    constant with one value per class (the form qonnx's Keras converter and FINN's
    ``GemmToMatMul`` leave); a scalar ``Add`` is one shared shift and stays in the chain."""
    bias = layer_bias(model, mm)
    if bias is not None or mm.op_type != "MatMul" or not chain or chain[0].op_type != "Add":
        return bias, chain, mm.output[0]
    add = chain[0]
    other = next((n for n in add.input if n != mm.output[0]), None)
    value = None if other is None else model.get_initializer(other)
    if value is None or np.size(value) == 1:
        return None, chain, mm.output[0]
    value = _one_per_output(add, value, "adds to the scores a constant of")
    return (value if np.any(value != 0) else None), chain[1:], add.output[0]
