"""Names in errors about nodes: the file's, not those qonnx's clean-up gives."""

import onnx
from onnx import helper

from bnnflow.model.qonnx_graph import load_graph, name_in_file, node_error

from .qonnx_fixtures import tiny_graph


def test_nodes_keep_the_names_they_have_in_the_file(tmp_path):
    path = tiny_graph(tmp_path / "tiny.onnx")
    names = [n.name for n in onnx.load(str(path)).graph.node]
    model = load_graph(path)
    renamed = [n for n in model.graph.node if name_in_file(n) != n.name]
    assert renamed                        # the clean-up renames (MatMul_0, ...)
    assert {name_in_file(n) for n in model.graph.node} <= set(names)
    fc1 = next(n for n in model.graph.node if name_in_file(n) == "fc1")
    assert fc1.name != "fc1"
    assert str(node_error(fc1, "x")) == "node fc1 (MatMul): x"


def test_a_node_without_a_name_in_the_file_is_named_as_qonnx_names_it():
    node = helper.make_node("MatMul", ["a", "b"], ["c"], name="MatMul_3")
    assert name_in_file(node) is None
    assert str(node_error(node, "x")) == "node MatMul_3 (MatMul): x"
    assert str(node_error(helper.make_node("Relu", ["a"], ["b"]), "y")) == "node ? (Relu): y"
