"""Import a binarized QONNX graph (Brevitas ``export_qonnx``, or FINN's streamlined form) as a
:class:`~bnnflow.model.artifact.BnnModel`, exactly.

What is built
    The graph must be one chain from its one input to its one output:

    * an input stage: ``Reshape``/``Flatten`` and elementwise ``Mul``/``Add``/``Sub``/``Div``
      by constants, then a 1-bit quantizer (``BipolarQuant``, or a signed 1-bit ``Quant``,
      which qonnx executes as the same sign with ``0 -> +1``), a narrow-range ``n``-bit one
      (a thermometer code) or a signed ``n``-bit one (``n``-bit pixels, as Brevitas CNV's
      8-bit input; :mod:`bnnflow.model.qonnx_input`);
    * per layer: ``MatMul``, ``Gemm`` or ``Conv`` with binarized weights (a 1-bit
      quantizer on an initializer, or an initializer of +-1 values), then elementwise ops
      (``BatchNormalization``, ``Mul``, ``Add``, ``Sub``, ``Div``, ``Relu``) and, for hidden
      layers, an activation quantizer: ``BipolarQuant``/1-bit ``Quant``, an ``n``-bit
      ``Quant`` (signed or unsigned: Brevitas' ``QuantReLU``), or ``MultiThreshold`` with
      ``2**n - 1`` thresholds, ``out_scale = 2c`` and ``out_bias`` a multiple of ``c``
      (FINN's streamlined bipolar, ``n``-bit or unsigned activations);
    * ``MaxPool`` nodes after a layer's quantizer;
    * FINN's lowered NHWC form, as ``export-qonnx`` writes it: ``Im2Col`` then ``MatMul`` (a
      conv layer) and ``MaxPoolNHWC``; an integer (``UINTn``) graph input read by the first
      layer after elementwise ops; a closing ``ArgMax``;
    * the last layer: elementwise ops after its ``MatMul``/``Gemm`` and nothing else.

    Quantizer scales must be positive. A layer's ``MatMul`` output is ``scale * dot`` with
    ``dot = 2p - L*K`` for the popcount ``p``: exactly so when ``scale`` (input scale times
    weight scale) is a power of two, otherwise up to the rounding of its float32 sums.

Exactness
    Hidden layers: the layer's own nodes after the ``MatMul`` (BatchNorm, quantizer, ...) are run
    by qonnx's executor on every reachable ``scale * dot``, and the thresholds are read off the
    outputs, as :func:`~bnnflow.model.export.fold_batchnorm` does for our own training; with a
    scale that is not a power of two (Brevitas' ``SignedBinaryWeightPerTensorConst`` has 0.1)
    they must also hold at ``scale * dot`` plus and minus a bound on the rounding of the sums
    (:func:`rounding_margin`), or the import is refused. For the
    Brevitas pattern (``BatchNormalization`` then a 1-bit quantizer) ``fold_batchnorm`` itself
    folds a torch ``BatchNorm1d`` with the graph's statistics (Brevitas' own arithmetic), and
    the import refuses when torch and onnxruntime disagree at any reachable popcount. A neuron
    whose output falls as its popcount rises has its weights flipped; the comparison stays
    ``popcount >= threshold``.

    Output layer: the scores after the last ``MatMul`` must be one function of the popcount
    shared by every class (columns identical on all reachable popcounts) and strictly
    monotone, and the layer's scale a power of two (a float sum of ``0.1``-scaled terms can
    break a popcount tie either way, which no threshold can reproduce); then the class is the
    popcount argmax (lowest index on ties), after flipping every output neuron if that
    function decreases. A per-class BatchNorm or scale changes the class order and is refused;
    a bias of the last layer is carried by constant neurons (:mod:`~bnnflow.model.qonnx_bias`).

    Unsigned activations (levels ``s * a``, ``a`` in ``0..L``) and signed ones without narrow
    range are the conventions' ``n``-bit levels ``v = 2a - L`` with an offset ``d`` (``L``,
    ``-1``): the next layer's dot gains ``d * sum w`` per neuron, which a hidden layer's
    thresholds absorb and the output layer gets from constant neurons
    (:mod:`bnnflow.model.qonnx_offset`).

    Conv and max-pool layers (Brevitas ``QuantConv2d`` and ``MaxPool2d``, NCHW): see
    :mod:`bnnflow.model.qonnx_import_conv`. The input stage: see
    :mod:`bnnflow.model.qonnx_input`.

Anything else (convolutions padded unevenly or with a value that is no input code's, unsigned
or 4-bit weight quantizers, branches, unknown ops) is refused with one line naming the node and
its op type.
"""

import numpy as np

from .artifact import BnnModel, DenseLayer
from .qonnx_bias import PER_CLASS, carry_bias, class_bias, near_ties
from .qonnx_fold import (
    bias_margin,
    rounding_margin,
    sums_exact,
    thresholds_of_levels,
    torch_fold,
)
from .qonnx_graph import QonnxError, is_power_of_two, node_error, run_nodes
from .qonnx_import_conv import (
    MAP_OPS,
    conv_layer,
    hwc_columns,
    lowered_conv,
    node_conv_geometry,
    pool_layer,
    repeat_channels,
)
from .qonnx_offset import carry_offset, offset_grid, repeated
from .qonnx_quant import activation, activation_levels, activation_offset
from .qonnx_weights import layer_bias, output_bias_of, weights
from .ternary import TernaryDenseLayer

__all__ = ["import_graph", "data_path", "split_path", "weights", "hidden_layer",
           "output_layer", "SHAPE_OPS", "ELEMENTWISE_OPS", "ACTIVATION_OPS", "LAYER_OPS"]

SHAPE_OPS = ("Reshape", "Flatten", "Identity")
ELEMENTWISE_OPS = ("BatchNormalization", "Mul", "Add", "Sub", "Div", "Relu")
ACTIVATION_OPS = ("BipolarQuant", "Quant", "MultiThreshold")
MATMUL_OPS = ("MatMul", "Gemm")
#: Ops that make a layer (a weighted sum, then its elementwise ops and quantizer).
LAYER_OPS = (*MATMUL_OPS, "Conv")
#: FINN's lowered NHWC form of conv and max-pool layers (as ``bnnflow export-qonnx`` writes).
LOWERED_OPS = ("Im2Col", "MaxPoolNHWC")
#: Map ops that bnnflow import does not build.
OTHER_MAP_OPS = ("AveragePool", "ConvTranspose", "QuantAvgPool2d", "GlobalAveragePool", "Pad",
                 "Transpose")
_KNOWN = SHAPE_OPS + ELEMENTWISE_OPS + ACTIVATION_OPS + MATMUL_OPS + MAP_OPS + LOWERED_OPS


def _check_known(node):
    if node.op_type in OTHER_MAP_OPS:
        raise node_error(node, "is not imported; bnnflow import builds Conv (NCHW) and "
                               "MaxPool layers, or FINN's Im2Col and MaxPoolNHWC, besides "
                               "MatMul/Gemm")
    if node.op_type not in _KNOWN:
        raise node_error(node, f"op {node.op_type} is not supported; bnnflow import builds "
                               f"{', '.join(_KNOWN)}")


def _is_weight_quant(model, node):
    return (node.op_type in ("BipolarQuant", "Quant")
            and model.get_initializer(node.input[0]) is not None)


def data_path(model):
    """The nodes from the graph's one input to its one output, in order; an ``ArgMax`` that
    makes the output (``export-qonnx --argmax``) is left out, so the path ends at the scores.

    Raises
    ------
    QonnxError
        Not one input and one output, a branch, or a node off the path.
    """
    graph = model.graph
    for what, items in (("inputs", graph.input), ("outputs", graph.output)):
        if len(items) != 1:
            names = ", ".join(v.name for v in items)
            raise QonnxError(f"the graph has {len(items)} {what} ({names}); bnnflow imports "
                             f"graphs with one input and one output")
    name, end, path = graph.input[0].name, graph.output[0].name, []
    while name != end:
        consumers = model.find_consumers(name)
        if not consumers:
            raise QonnxError(f"tensor {name} feeds no node and is not the graph's output")
        if len(consumers) > 1:
            raise node_error(consumers[1], f"tensor {name} feeds {len(consumers)} nodes; "
                                           f"bnnflow imports a chain of layers, no branches")
        node = consumers[0]
        if node.op_type == "ArgMax" and node.output[0] == end:
            on_path = {n.name for n in path} | {node.name}
            break
        _check_known(node)
        if node.input[0] != name:
            raise node_error(node, f"takes the data tensor {name} as input "
                                   f"{list(node.input).index(name)}, expected input 0")
        path.append(node)
        name = node.output[0]
    else:
        on_path = {n.name for n in path}
    for node in graph.node:
        if node.name not in on_path and not _is_weight_quant(model, node):
            _check_known(node)
            raise node_error(node, "is not on the chain from the input to the output")
    return path


def _scale_fix(in_scale, wscale):
    """What to change when ``in_scale * wscale`` is not a power of two."""
    if np.all(is_power_of_two(wscale)) and not np.all(is_power_of_two(in_scale)):
        return ("give the activations before it a power-of-two scale (Brevitas: "
                "restrict_scaling_type=RestrictValueType.POWER_OF_TWO on the QuantReLU or "
                "QuantIdentity)")
    return ("give the weights a power-of-two scale (Brevitas: scaling_const = 1.0, as "
            "bnn_pynq's CommonWeightQuant)")


def _probe(model, mm, chain, act, count, live, scale, shift, terms, offset, fix, bias):
    """The activation levels ``(count + 1, N)`` at every popcount ``p`` (the dot ``2p - m`` for
    ``m`` = ``live`` inputs of each neuron, plus ``shift``; then ``bias``, per neuron or None),
    checked to hold within the float rounding of ``terms`` products (else refused, naming
    ``fix``)."""
    # an input offset d makes the inputs up to L + |d| in size, not L
    size = count + abs(offset) * terms
    margin = rounding_margin(scale, size, terms)
    if bias is not None:
        margin = margin + bias_margin(scale, bias, size, terms,
                                      grid=float(offset).is_integer())
    p = np.arange(count + 1)[:, None]
    z = (2.0 * p - live[None, :] + shift[None, :]) * scale[None, :]  # exact for powers of two
    if bias is not None:
        z = z + bias[None, :]
    probes = np.concatenate([z, z - margin[None, :], z + margin[None, :]])
    nhwc = any(a.name == "data_layout" and a.s == b"NHWC" for a in act.attribute)
    # a MultiThreshold on NHWC maps reads channels on axis 3
    out = run_nodes(model, [*chain, act], mm.output[0],
                    probes[:, None, None, :] if nhwc else probes)
    levels = activation_levels(model, act, out.reshape(len(probes), -1))
    levels, low, high = np.split(levels, 3)
    moved = ((levels != low) | (levels != high)) & (p <= live[None, :])
    if np.any(moved):
        j = int(np.flatnonzero(np.any(moved, axis=0))[0])
        if is_power_of_two(scale[j]):       # exact products: the bias's rounding moved it
            raise node_error(act, f"neuron {j}: its output changes within the float rounding "
                                  f"of adding its bias {bias[j]:g} to the products, which "
                                  f"depends on the runtime's order of additions; cannot "
                                  f"import it exactly; quantize the bias on the layer's "
                                  f"scale (Brevitas: bias_quant=Int32Bias) or train the layer "
                                  f"without one (bias=False; the BatchNorm after it has one)")
        raise node_error(act, f"neuron {j}: its output changes within the float rounding of "
                              f"the MatMul (scale {scale[j]:g} is not a power of two); cannot "
                              f"import it exactly; {fix}")
    return levels, margin


def hidden_layer(model, name, mm, chain, act, in_bits, in_scale, in_map=None, in_copies=1,
                 in_offset=0):
    """A hidden ``binary_dense`` (``ternary_dense``) layer, or ``binary_conv2d`` for a ``Conv``
    node; returns ``(layer, out_bits, out_scale, out_copies, out_offset)``. ``in_map``: the
    ``(H, W, C)`` map a ``MatMul``/``Gemm`` reads flattened in NCHW order; ``in_copies``:
    thermometer copies of each input (:func:`~bnnflow.model.qonnx_quant.activation`),
    level-major; ``in_offset``: ``d`` of inputs worth ``in_scale * (v + d)`` (an ``n``-bit input,
    :func:`~bnnflow.model.qonnx_input.input_spec`, or activation levels with an offset,
    :func:`~bnnflow.model.qonnx_quant.activation_offset`), so the ``MatMul`` output is
    ``in_scale * w_scale * (dot + d * sum w)``."""
    geometry = node_conv_geometry(model, mm, in_bits, in_scale, in_offset, in_copies)
    bits, wscale, mask = weights(model, mm)
    bits, mask = _inputs(mm, bits, mask, in_map, in_copies)
    top_in = (1 << in_bits) - 1
    count = top_in * bits.shape[1]
    live = np.full(len(bits), count) if mask is None else top_in * mask.sum(axis=1)
    signs = 2 * bits.astype(np.int64) - 1
    shift = in_offset * (signs if mask is None else signs * mask).sum(axis=1)
    scale = in_scale * wscale
    out_bits, out_scale, copies = activation(model, act)
    out_offset = activation_offset(model, act)
    if (chain and chain[-1].op_type == "Relu" and act.op_type != "MultiThreshold"
            and (out_bits, copies, out_offset) == (1, 1, 0)):         # sign(relu(y)) = +1
        raise node_error(act, "a bipolar quantizer after a Relu gives +1 for every input (a "
                              "1-bit QuantReLU, as Brevitas exports it); use a QuantReLU of 2 "
                              "or more bits, or a signed binary activation")
    bias = layer_bias(model, mm)
    if bias is not None:
        bias = np.broadcast_to(bias, scale.shape)
    levels, margin = _probe(model, mm, chain, act, count, live, scale, shift, bits.shape[1],
                            in_offset, _scale_fix(in_scale, wscale), bias)
    top = copies if copies > 1 else (1 << out_bits) - 1
    thresholds, flip = thresholds_of_levels(act, levels, top, live)
    if (mask is None and copies == 1 and out_bits == 1 and out_offset == 0
            and [n.op_type for n in chain] == ["BatchNormalization"]):
        t, f = torch_fold(model, chain[0], scale, margin, count,
                          shift * scale + (0.0 if bias is None else bias))
        p = np.arange(count + 1)[:, None]
        torch_fires = np.where(f[None, :], count - p, p) >= t[None, :]
        if not np.array_equal(torch_fires, levels == 1):
            j = int(np.flatnonzero(np.any(torch_fires != (levels == 1), axis=0))[0])
            raise node_error(chain[0], f"neuron {j}: torch (Brevitas) and onnxruntime (qonnx) "
                                       f"round this BatchNorm differently at a reachable "
                                       f"popcount; cannot import it exactly")
        thresholds, flip = t[:, None], f
    bits = np.where(flip[:, None], 1 - bits, bits).astype(np.uint8)
    if mask is not None:
        bits *= mask                                    # a zero weight keeps sign bit 0
    return _build(name, geometry, bits, mask, thresholds, in_bits, copies), \
        out_bits, out_scale, copies, out_offset


def _build(name, geometry, bits, mask, thresholds, in_bits, copies):
    """The layer of folded rows: conv (``geometry``:
    :func:`~bnnflow.model.qonnx_import_conv.node_conv_geometry`) or dense (``geometry`` None), with
    ``copies`` binary neurons (channels) per neuron, level-major, one threshold each."""
    if copies > 1:
        bits, thresholds = np.tile(bits, (copies, 1)), thresholds.T.reshape(-1, 1)
        mask = None if mask is None else np.tile(mask, (copies, 1))
    if geometry is not None:
        return conv_layer(name, bits, thresholds, in_bits, mask=mask, **geometry)
    if mask is not None:
        return TernaryDenseLayer(name, bits, mask, thresholds, in_bits=in_bits)
    return DenseLayer(name, bits, thresholds, in_bits=in_bits)


def _inputs(mm, bits, mask, in_map, in_copies):
    """Weight rows ``(N, K)`` (and their mask) in the conventions' input order: channels-last
    after a map, and the columns repeated for each of ``in_copies`` thermometer copies
    (level-major: over the whole input of a dense layer after a dense layer, per channel after
    a map)."""
    conv = mm.op_type == "Conv"
    if conv and in_copies > 1 and in_map is None:
        raise node_error(mm, "reads a thermometer-coded input (a narrow-range n-bit Quant on "
                             "the input); bnnflow's conv layers read one bit or one n-bit "
                             "pixel per input value (a signed Quant without narrow range, as "
                             "Brevitas CNV's 8-bit input)")
    if in_map is not None and not conv and bits.shape[1] * in_copies != int(np.prod(in_map)):
        raise node_error(mm, f"reads {bits.shape[1]} inputs after a map of "
                             f"{int(np.prod(in_map)) // in_copies} values")

    def each(rows):
        if rows is None or in_copies == 1 and (in_map is None or conv):
            return rows
        if in_map is None:
            return np.tile(rows, (1, in_copies))
        channels = in_map[2] // in_copies
        if not conv:        # a dense layer reads the map flattened NCHW
            rows = hwc_columns(rows, (in_map[0], in_map[1], channels))
        return repeat_channels(rows, channels, in_copies)

    return each(bits), each(mask)


def output_layer(model, name, mm, chain, in_bits, in_scale, in_map=None, in_copies=1,
                 in_offset=0):
    """``(layer, reads, bias)``: the output layer (popcounts), how many times it reads its
    inputs (the caller repeats the previous layer's neurons) and its bias as ``(u, span)``: in
    popcounts per class, oriented as the popcounts, for popcounts ``0..span`` (or None;
    :func:`~bnnflow.model.qonnx_bias.carry_bias` carries it). Refuses a score
    map that is not shared and monotone (over the dots ``in_offset`` and the bias move it to
    as well: see :func:`~bnnflow.model.qonnx_offset.offset_grid`).

    The output layer is binary (conventions). Ternary weights ``w = (u1 + u2) / 2`` with
    ``u1 = u2 = w`` where live and ``u1 = +1``, ``u2 = -1`` where 0 become a binary layer over
    the inputs taken twice, ``[x, x]``, with half the scale. A bias whose float rounding
    reaches a comparison between two classes is refused.
    """
    if mm.op_type == "Conv":
        raise node_error(mm, "the last layer must be MatMul or Gemm (scores per class), not a "
                             "convolution")
    bits, wscale, mask = weights(model, mm)
    bits, mask = _inputs(mm, bits, mask, in_map, in_copies)
    scale, width = in_scale * wscale, bits.shape[1]
    if mask is not None:
        bits = np.concatenate([np.where(mask == 1, bits, 1), np.where(mask == 1, bits, 0)],
                              axis=1).astype(np.uint8)
        scale = scale / 2
    if not np.all(is_power_of_two(scale)):
        fix = ("give it a power-of-two scale (e.g. Brevitas' scaling_const = 1.0)"
               if not np.all(is_power_of_two(wscale)) else _scale_fix(in_scale, wscale))
        raise node_error(mm, f"the last layer's scale {scale[0]:g} is not a power of two: "
                             f"float rounding of its sums can break popcount ties against "
                             f"the lowest-index rule, so the class cannot be reproduced "
                             f"exactly; {fix}")
    top = (1 << in_bits) - 1
    bias, chain, src = output_bias_of(model, mm, chain)
    grid = offset_grid(top, bits.shape[1], in_offset)
    if bias is None:
        scores = grid[:, None] * scale[None, :]
    else:
        bias = class_bias(mm, bias, scale)
        size = (top + abs(in_offset)) * width
        margin = bias_margin(in_scale * wscale, bias, size, width, grid=in_offset == 0)
        # an Add after an exact MatMul rounds once: equal biases tie exactly on equal dots,
        # and sums a dot step (>= 2 units in the last place) apart keep their order
        single = src != mm.output[0] and bool(np.all(
            sums_exact(in_scale * wscale, bias, size, grid=in_offset == 0)))
        near_ties(mm, bias, scale[0], margin, len(grid) - 1, equal_tie=single)
        sums = grid[:, None] * scale[0] + bias[None, :]
        values = np.unique(np.concatenate([sums - margin, sums, sums + margin]))
        scores = np.tile(values[:, None], (1, len(scale)))   # the chain sees every class's sums
    if chain:
        scores = run_nodes(model, chain, src, scores)
    where = chain[0] if chain else mm
    if np.any(scores != scores[:, :1]):
        raise node_error(where, PER_CLASS)
    col = np.diff(scores[:, 0].astype(np.float64))
    if not (np.all(col > 0) or np.all(col < 0)):
        raise node_error(where, "the scores are not strictly monotone in the popcount (two "
                                "popcounts tie), so the class could differ from the popcount "
                                "argmax")
    if col[0] < 0:
        bits = (1 - bits).astype(np.uint8)          # p -> K - p restores the order
    if bias is not None:                        # popcount units, over popcounts 0..span
        bias = (bias / (2 * scale[0]) * (1 if col[0] > 0 else -1), len(grid) - 1)
    return DenseLayer(name, bits, None, in_bits=in_bits), bits.shape[1] // width, bias


def _note(notes, key, hidden, width, **extra):
    """Record in ``notes[key]`` the constant neurons that ``hidden`` gained past ``width``."""
    if hidden is not None and hidden.out_width > width:
        notes[key] = {"layer": hidden.name, **extra, "count": hidden.out_width - width}


def split_path(path, quantized_input=True):
    """``(prelude, input quantizer, items)``: each item ``("layer", node, chain, activation or
    None)`` for a ``MatMul``/``Gemm``/``Conv`` (a ``MatMul`` after FINN's ``Im2Col``: a
    lowered conv), or ``("pool", node, None, None)``. With ``quantized_input`` False (an
    integer graph input that the first layer reads directly) the prelude runs up to the first
    layer and the input quantizer is None."""
    i, prelude = 0, []
    while i < len(path) and path[i].op_type not in ACTIVATION_OPS:
        if path[i].op_type in (*LAYER_OPS, "Im2Col"):
            if not quantized_input:
                break
            raise node_error(path[i], "multiplies the float input; bnnflow needs the input "
                                      "binarized first (a BipolarQuant on the input)")
        prelude.append(path[i])
        i += 1
    if i == len(path):
        raise QonnxError("the graph has no quantizer on its input and no layers")
    in_act, items = None, []
    if quantized_input:
        in_act, i = path[i], i + 1
    while i < len(path):
        while i < len(path) and path[i].op_type in SHAPE_OPS:
            i += 1
        if i == len(path):
            break
        if path[i].op_type in ("MaxPool", "MaxPoolNHWC"):
            items.append(("pool", path[i], None, None))
            i += 1
            continue
        if path[i].op_type == "Im2Col":
            i += 1
            if i == len(path) or path[i].op_type != "MatMul":
                raise node_error(path[i - 1], "must feed a MatMul (FINN's lowered conv)")
        if path[i].op_type not in LAYER_OPS:
            raise node_error(path[i], "expected MatMul, Gemm, Conv or MaxPool after an "
                                      "activation quantizer")
        mm, chain, act, i = path[i], [], None, i + 1
        while i < len(path) and path[i].op_type in ELEMENTWISE_OPS:
            chain.append(path[i])
            i += 1
        if i < len(path):
            if path[i].op_type not in ACTIVATION_OPS:
                raise node_error(path[i], "expected an activation quantizer or the output")
            act, i = path[i], i + 1
        items.append(("layer", mm, chain, act))
    if not any(item[0] == "layer" for item in items):
        raise QonnxError("the graph has no MatMul or Gemm layer")
    kind, node, _, act = items[-1]
    if kind == "pool" or act is not None:
        raise node_error(act or node, "the last layer must output scores, not quantized "
                                      "activations")
    return prelude, in_act, items


def import_graph(model, graph_input, path=None):
    """Build the layers of a cleaned QONNX graph.

    Parameters
    ----------
    model : ModelWrapper
        A graph loaded with :func:`bnnflow.model.qonnx_graph.load_graph`.
    graph_input : GraphInput
        Its input stage (:func:`bnnflow.model.qonnx_input.read_input`): the input spec, the
        scale and offset of the first layer's inputs, and the copies of each.
    path : list of NodeProto, optional
        The data path, if already computed.

    Returns
    -------
    BnnModel
        Layers ``fc0 .. fcN`` (``convI``, ``poolI`` for maps); no classes; as provenance only
        ``offset_neurons`` (``layer``, ``offset``, ``count``) when constant neurons carry the
        output layer's offset (:mod:`bnnflow.model.qonnx_offset`).
    """
    _, _, items = split_path(path or data_path(model), graph_input.quantized)
    spec, in_scale, offset = graph_input.spec, graph_input.scale, graph_input.offset
    built, in_bits, copies, nhwc, notes = [], spec.bits, graph_input.copies, False, {}
    for i, (kind, node, chain, act) in enumerate(items):
        # a dense layer after FINN's NHWC map reads it channels-last already: no reordering
        in_map = getattr(built[-1], "out_shape", None) if built and not nhwc else None
        if kind == "pool":
            built.append(pool_layer(model, node, f"pool{i}", in_bits, copies))
            nhwc = node.op_type == "MaxPoolNHWC"
        elif act is None:
            if offset and not built:
                raise node_error(node, "the last layer reads the n-bit input directly; its "
                                       "offset per class has no place in bnnflow's popcount "
                                       "output (add a hidden layer)")
            layer, reads, bias = output_layer(model, f"fc{i}", node, chain, in_bits, in_scale,
                                              in_map, copies, offset)
            if reads > 1:
                if not built or getattr(built[-1], "out_shape", None) is not None:
                    raise node_error(node, "the last layer reads its inputs twice (ternary "
                                           "weights), which is imported after a dense hidden "
                                           "layer only")
                built[-1] = repeated(built[-1], reads)
            if offset:
                hidden = built[-1] if built else None
                width = 0 if hidden is None else hidden.out_width
                hidden, layer = carry_offset(node, hidden, layer, offset)
                _note(notes, "offset_neurons", hidden, width, offset=int(offset))
                built[-1] = hidden
            if bias is not None:        # the last weighted layer and the pools after it
                start = max((j for j, b in enumerate(built) if hasattr(b, "weights")),
                            default=len(built))
                built[start:], layer, note = carry_bias(node, built[start:], layer, *bias)
                if note:
                    notes["bias_neurons"] = note
            built.append(layer)
        else:
            nhwc = lowered_conv(model, node) is not None
            name = f"conv{i}" if node.op_type == "Conv" or nhwc else f"fc{i}"
            layer, in_bits, in_scale, copies, offset = hidden_layer(
                model, name, node, chain, act, in_bits, in_scale, in_map, copies, offset)
            built.append(layer)
    try:
        return BnnModel(layers=built, input=spec, provenance=notes)
    except ValueError as e:
        raise QonnxError(f"the imported layers do not chain: {e}") from None
