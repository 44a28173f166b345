"""Running FINN's lowered conv graphs on a batch of images with qonnx's executor.

qonnx's ``Im2Col`` is right for one image only: its output reshape takes the batch as the
slowest axis where its im2col made it the fastest, and its shape inference writes batch 1 from
its ``input_shape`` attribute, so a graph with ``Im2Col`` nodes would otherwise have to be run
one image at a time (a whole executor pass per image). :func:`batched` gives a copy of such a
graph whose ``Im2Col`` nodes are :class:`BatchIm2Col` (this module is their domain, as qonnx
finds custom ops by the node's domain): the same op, run image by image inside the node, with
the batch taken from its input. The graph that is written out is never changed.
"""

import numpy as np
from qonnx.custom_op.general.im2col import Im2Col, compute_conv_output_dim

__all__ = ["BatchIm2Col", "batched", "custom_op"]

_DOMAIN = __name__


class BatchIm2Col(Im2Col):
    """qonnx's ``Im2Col`` on a batch: each image through qonnx's own batch-1 code."""

    def make_shape_compatible_op(self, model):
        shape = model.get_tensor_shape(self.onnx_node.input[0])
        if shape is None or len(shape) != 4 or shape[0] in (None, 1):
            return super().make_shape_compatible_op(model)
        _, h, w, c = shape
        k_h, k_w = self.get_nodeattr("kernel_size")
        stride_h, stride_w = self.get_nodeattr("stride")
        dil_h, dil_w = self.get_nodeattr("dilations")
        pad = self.get_nodeattr("pad_amount")
        oh = compute_conv_output_dim(h, k_h, stride_h, pad[0] + pad[2], dil_h)
        ow = compute_conv_output_dim(w, k_w, stride_w, pad[1] + pad[3], dil_w)
        return self.make_const_shape_op([shape[0], oh, ow, k_h * k_w * c])

    def execute_node(self, context, graph):
        name, out = self.onnx_node.input[0], self.onnx_node.output[0]
        x = context[name]
        parts = []
        try:
            for i in range(x.shape[0]):
                context[name] = x[i:i + 1]
                super().execute_node(context, graph)
                parts.append(context[out])
        finally:
            context[name] = x
        context[out] = np.concatenate(parts, axis=0)


#: qonnx's registry reads a domain module's ``custom_op`` dict.
custom_op = {"Im2Col": BatchIm2Col}


def batched(model, batch):
    """A copy of ``model`` for ``batch`` images: its ``Im2Col`` nodes as :class:`BatchIm2Col`,
    the batch size set on its input, outputs, every shape it records and every ``Reshape``.

    Without ``Im2Col`` nodes this is :func:`~bnnflow.model.qonnx_graph.with_batch`. With them
    the recorded shapes are kept (with the new batch size) rather than dropped: qonnx infers
    the shape of a ``MaxPoolNHWC`` only from the shape recorded for its input.
    """
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    from .qonnx_graph import _quiet, with_batch

    if not model.get_nodes_by_op_type("Im2Col"):
        return with_batch(model, batch)
    copy = ModelWrapper(model.model.SerializeToString())
    graph = copy.graph
    for node in graph.node:
        if node.op_type == "Im2Col":
            node.domain = _DOMAIN
    constants = {t.name for t in graph.initializer}
    for info in [*graph.input, *graph.output, *graph.value_info]:
        dims = info.type.tensor_type.shape.dim
        if info.name not in constants and len(dims):
            dims[0].dim_value = int(batch)
    for node in copy.get_nodes_by_op_type("Reshape"):
        shape = copy.get_initializer(node.input[1])
        if shape is not None:
            shape = shape.copy()
            shape[0] = int(batch)
            copy.set_initializer(node.input[1], shape)
    return _quiet(copy.transform, InferShapes())
