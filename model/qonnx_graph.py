"""QONNX graph helpers shared by ``bnnflow import`` and ``bnnflow export-qonnx``.

Loading (with qonnx's own clean-up and shape inference), running a graph on a batch with
qonnx's executor (:func:`qonnx.core.onnx_exec.execute_onnx`), evaluating a few elementwise
nodes of a graph on chosen values, and the one-line errors both directions raise. Nothing here
parses protobuf by hand: :class:`qonnx.core.modelwrapper.ModelWrapper` does.
"""

import hashlib
import warnings
from pathlib import Path

import numpy as np

from ..errors import BnnflowError, first_line

__all__ = ["QonnxError", "node_error", "name_in_file", "load_graph", "graph_from_bytes",
           "with_batch", "execute", "execute_context", "run_nodes", "file_sha256",
           "is_power_of_two", "QONNX_DOMAIN"]

#: The domain of qonnx's custom ops (``BipolarQuant``, ``Quant``, ``MultiThreshold``).
QONNX_DOMAIN = "qonnx.custom_op.general"


class QonnxError(BnnflowError):
    """A QONNX graph that bnnflow cannot read, build exactly or reproduce; one line, exit 2."""


#: Prefix of the ``doc_string`` line in which :func:`load_graph` keeps a node's name in the
#: file: qonnx's clean-up renames every node (``MatMul_0``), and an error should give the name
#: a user finds in the file (e.g. in Netron).
_ORIGIN = "bnnflow-name-in-file: "


def _stamp_names(proto):
    """Keep each named node's name in its ``doc_string`` (which transformations carry)."""
    for node in proto.graph.node:
        if node.name:
            node.doc_string = f"{_ORIGIN}{node.name}\n{node.doc_string}"


def name_in_file(node):
    """The name ``node`` had in the file :func:`load_graph` read, or ``None``."""
    first = node.doc_string.split("\n", 1)[0]
    return first[len(_ORIGIN):] if first.startswith(_ORIGIN) else None


def node_error(node, problem):
    """The :class:`QonnxError` ``node NAME (OP): PROBLEM`` for an ONNX node, ``NAME`` the one
    the node has in the file (qonnx's clean-up renames nodes ``MatMul_0``, ... which a user
    cannot find in the file), or qonnx's for a node it made."""
    return QonnxError(f"node {name_in_file(node) or node.name or '?'} ({node.op_type}): "
                      f"{problem}")


def file_sha256(path):
    """``sha256:<hex>`` of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def _quiet(fn, *args, **kwargs):
    """Run a qonnx call with its Python warnings silenced (tests run warnings as errors)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _run(*args, **kwargs):
    """qonnx's ``execute_onnx``; a graph it cannot run (onnxruntime's type errors, qonnx's
    asserts) is one :class:`QonnxError` line."""
    from qonnx.core.onnx_exec import execute_onnx

    try:
        return _quiet(execute_onnx, *args, **kwargs)
    except Exception as e:
        first = first_line(e)
        raise QonnxError(f"qonnx's executor cannot run the graph ({type(e).__name__}: "
                         f"{first}); check it with onnx.checker.check_model and "
                         f"onnxruntime") from None


def _clean(model):
    from qonnx.util.cleanup import cleanup_model

    return _quiet(cleanup_model, model)


def load_graph(path):
    """Read an ONNX file (external data beside it included) and clean it up with qonnx.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    qonnx.core.modelwrapper.ModelWrapper
        After :func:`qonnx.util.cleanup.cleanup_model` (shape inference, constant folding
        that keeps the quantizers, unique node names).

    Raises
    ------
    QonnxError
        The file is missing, a directory, not an ONNX model, has more than one input or
        output, or qonnx cannot clean it up. Nodes and tensors are renamed by the clean-up
        (``MatMul_0``, ``Quant_1``, ...); errors about nodes give the names in the file
        (:func:`node_error`).
    """
    import onnx
    from google.protobuf.message import DecodeError
    from qonnx.core.modelwrapper import ModelWrapper

    path = Path(path)
    if not path.exists():
        raise QonnxError(f"{path}: no such file (export one with brevitas.export.export_qonnx)")
    if path.is_dir():
        raise QonnxError(f"{path}: is a directory, not an ONNX file")
    try:
        proto = onnx.load(str(path))
    except onnx.checker.ValidationError as e:     # tensors kept in a file beside it
        first = first_line(e)
        raise QonnxError(f"{path}: cannot read the tensors it keeps in a separate file "
                         f"({first}); keep that file beside it, as the export wrote it") \
            from None
    except (DecodeError, ValueError, RuntimeError, OSError) as e:
        first = first_line(e)
        raise QonnxError(f"{path}: not an ONNX model ({first})") from None
    if not proto.graph.node:
        raise QonnxError(f"{path}: not an ONNX model (the graph has no nodes)")
    constants = {t.name for t in proto.graph.initializer}
    inputs = [v.name for v in proto.graph.input if v.name not in constants]
    for what, names in (("inputs", inputs), ("outputs", [v.name for v in proto.graph.output])):
        if len(names) != 1:
            raise QonnxError(f"{path}: the graph has {len(names)} {what} ({', '.join(names)}); "
                             f"bnnflow imports graphs with one input and one output")
    _check_input(path, next(v for v in proto.graph.input if v.name not in constants))
    _stamp_names(proto)
    try:
        return _clean(ModelWrapper(proto))
    except Exception as e:  # qonnx reports problems with assert and bare Exception
        first = first_line(e)
        raise QonnxError(f"{path}: qonnx cannot clean up this graph ({first})") from None


def _check_input(path, value):
    """The graph's input must be float (bnnflow feeds float32, as Brevitas and FINN graphs
    take it; a quantization annotation may say UINTn) with fixed positive sizes after the
    batch dimension (which may be symbolic)."""
    from onnx import TensorProto

    kind = value.type.tensor_type.elem_type
    if kind != TensorProto.FLOAT:
        name = TensorProto.DataType.Name(kind).lower()
        raise QonnxError(f"{path}: the graph's input {value.name} is {name}; bnnflow feeds "
                         f"float32, as Brevitas and FINN export: declare it FLOAT (an n-bit "
                         f"input takes a UINTn quantization annotation)")
    dims = list(value.type.tensor_type.shape.dim)
    shown = "(" + ", ".join(d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?")
                            for d in dims) + ")"
    if len(dims) < 2:
        raise QonnxError(f"{path}: the graph's input {value.name} has shape {shown}; bnnflow "
                         f"reads a batch dimension then the image's, such as (1, C, H, W) or "
                         f"(1, K)")
    for i, d in enumerate(dims[1:], start=2):
        if not d.HasField("dim_value") or d.dim_value < 1:
            what = "is 0" if d.HasField("dim_value") else "is not a fixed size"
            raise QonnxError(f"{path}: the graph's input {value.name} has shape {shown}: "
                             f"dimension {i} {what}; export the graph with the image's shape "
                             f"(Brevitas: export_qonnx(model, input_shape=(1, C, H, W)))")


def graph_from_bytes(data):
    """A :class:`~qonnx.core.modelwrapper.ModelWrapper` of serialized ONNX ``data``."""
    from qonnx.core.modelwrapper import ModelWrapper

    return ModelWrapper(data)


def with_batch(model, batch):
    """A copy of ``model`` whose input (and every Reshape) has batch size ``batch``; tensor
    names are kept."""
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    try:
        return _quiet(lambda: model.transform(ChangeBatchSize(int(batch)))
                      .transform(InferShapes()))
    except Exception as e:  # qonnx fails with IndexError on an output it cannot shape
        first = first_line(e)
        raise QonnxError(f"qonnx cannot give the graph a batch size ({type(e).__name__}: "
                         f"{first}); its output shape is not inferred: check that every node's "
                         f"inputs have shapes that broadcast") from None


def execute(model, x, end_node=None, tensor=None):
    """Run ``model`` on one batch with qonnx's executor.

    Parameters
    ----------
    model : ModelWrapper
        Its input's batch size must be ``len(x)`` (see :func:`with_batch`).
    x : array
        The input, shaped as the graph's input.
    end_node : NodeProto, optional
        Stop after this node.
    tensor : str, optional
        Return this tensor instead of the graph's first output.
    """
    name = model.graph.input[0].name
    full = end_node is not None or tensor is not None
    out = _run(model, {name: np.asarray(x, dtype=np.float32)}, return_full_exec_context=full,
               end_node=end_node)
    if tensor is not None:
        return np.asarray(out[tensor])
    if end_node is not None:
        return np.asarray(out[end_node.output[0]])
    return np.asarray(out[model.graph.output[0].name])


def execute_context(model, x):
    """Run ``model`` on one batch ``x``; every tensor of the execution, by name."""
    name = model.graph.input[0].name
    return _run(model, {name: np.asarray(x, dtype=np.float32)}, return_full_exec_context=True)


def run_nodes(model, nodes, in_name, values):
    """Evaluate a chain of ``model``'s nodes on ``values`` fed as tensor ``in_name``.

    The nodes (elementwise ops and quantizers whose other inputs are initializers) are copied
    into a graph of their own, with ``values`` as its input and the last node's output as its
    output, and run by qonnx's executor: the same arithmetic the whole graph performs.
    """
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    values = np.asarray(values, dtype=np.float32)
    inits = []
    for node in nodes:
        for name in node.input[1:]:
            value = model.get_initializer(name)
            if value is not None:
                inits.append(helper.make_tensor(name, TensorProto.FLOAT, value.shape,
                                                np.asarray(value, np.float32).ravel()))
    out = nodes[-1].output[0]
    graph = helper.make_graph(
        list(nodes), "chain",
        [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, list(values.shape))],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, list(values.shape))],
        initializer=inits)
    proto = helper.make_model(graph, opset_imports=list(model.model.opset_import))
    sub = _quiet(ModelWrapper(proto).transform, InferShapes())
    return execute(sub, values)


def is_power_of_two(values):
    """True where a float is a positive power of two (its mantissa is exactly 1/2)."""
    values = np.asarray(values, dtype=np.float64)
    mantissa, _ = np.frexp(values)
    return (values > 0) & np.isfinite(values) & (mantissa == 0.5)
