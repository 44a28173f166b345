"""qonnx_batch: a lowered conv graph run on a batch gives each image's batch-1 result, and the
graph that was given is left as it was."""

import numpy as np
import pytest

from bnnflow.model.qonnx_batch import batched
from bnnflow.model.qonnx_export import export_graph, graph_inputs
from bnnflow.model.qonnx_graph import execute
from bnnflow.model.random_net import random_conv_model

from .test_qonnx_roundtrip import CONV_NETS


@pytest.mark.parametrize("net", range(len(CONV_NETS)))
def test_a_batch_gives_each_images_batch_1_result(net):
    model = random_conv_model(*CONV_NETS[net], seed=net, input_bits=8 if net == 1 else 1)
    graph = export_graph(model)
    images = np.random.default_rng(net).uniform(0, model.input.encoding["scale"],
                                                size=(7, *model.input.shape))
    x = graph_inputs(model, images)
    one_by_one = np.concatenate([execute(graph, x[i:i + 1]) for i in range(len(x))])
    assert np.array_equal(execute(batched(graph, len(x)), x), one_by_one)
    # the given graph keeps qonnx's own Im2Col, batch 1
    assert {n.domain for n in graph.graph.node if n.op_type == "Im2Col"} == \
        {"qonnx.custom_op.general"}
    assert graph.get_tensor_shape(graph.graph.input[0].name)[0] == 1
