"""``export-qonnx`` then ``import`` gives the same model back (FINN's lowered conv form: Im2Col,
MaxPoolNHWC; the ``bnnflow_input`` metadata; UINT8 pixel levels; a closing ArgMax), and a
FINN-style graph that reads raw UINT8 levels straight into its first MatMul imports exactly."""

import dataclasses
import re

import numpy as np
import onnx
import pytest

from bnnflow.model import artifact, golden
from bnnflow.model.artifact import BnnModel, InputSpec
from bnnflow.model.qonnx_export import export_graph, run_exported
from bnnflow.model.qonnx_graph import execute, graph_from_bytes, load_graph
from bnnflow.model.qonnx_import import data_path, import_graph
from bnnflow.model.qonnx_input import read_input
from bnnflow.model.random_net import random_conv_model, random_model

from .qonnx_fixtures import import_refused, run_cli

#: (input shape, stages, classes): odd sizes, a 3-channel input, a map straight into the
#: output layer.
CONV_NETS = [
    ((7, 6, 2), [("conv", 5, 3), ("pool", 2), ("conv", 3, 2), ("dense", 7)], 4),
    ((9, 8, 1), [("conv", 4, 2, 3), ("conv", 3, 3), ("pool", 2, 1), ("dense", 5)], 3),
    ((5, 5, 3), [("conv", 2, 3), ("pool", 3)], 5),
    # A stride-2 conv whose map's last row is read by no window, then a stride-1 one.
    ((11, 10, 2), [("conv", 4, 3, 3, 2), ("conv", 3, 2, 2, 1), ("pool", 2), ("dense", 5)], 3),
]
#: Padded conv networks (stage ("conv", Cout, kh, kw, stride, pad, pad code)) and their kinds:
#: each pad code makes the golden popcounts differ from those with another code (seed 2).
PADDED_NETS = {
    "binary, code 0": ((7, 6, 2), [("conv", 5, 3, 3, 1, 1, 0), ("pool", 2), ("dense", 7)], 4,
                       {}),
    "binary, code 1, strided": ((9, 8, 1), [("conv", 4, 3, 3, 2, 1, 1),
                                            ("conv", 3, 3, 3, 1, 2, 0), ("dense", 5)], 3, {}),
    "ternary": ((7, 6, 2), [("conv", 5, 3, 3, 1, 1, 1), ("pool", 2), ("conv", 3, 2, 2, 1, 1, 0),
                            ("dense", 6)], 4, {"ternary": True}),
    "2-bit": ((9, 8, 1), [("conv", 4, 3, 3, 2, 1, 0), ("conv", 3, 3, 3, 1, 1, 2), ("dense", 5)],
              3, {"act_bits": 2}),
    "8-bit pixels, code 200": ((8, 8, 1), [("conv", 4, 3, 3, 1, 1, 200),
                                           ("conv", 3, 3, 3, 1, 1, 1), ("dense", 5)], 3,
                               {"input_bits": 8}),
}
KINDS = {"binary": {}, "ternary": {"ternary": True}, "2-bit": {"act_bits": 2},
         "8-bit input": {"input_bits": 8},
         "all three": {"input_bits": 8, "ternary": True, "act_bits": 2}}
THERMO = {"kind": "thermometer", "scale": 16.0, "thresholds": [0.25, 0.5, 0.75]}


def _save_graph(model, path, argmax=False):
    onnx.save(export_graph(model, argmax=argmax).model, str(path))
    return load_graph(path)


def _read_back(graph, shape=None, scale=None):
    route = data_path(graph)
    return import_graph(graph, read_input(graph, route, shape, scale), route)


def _same_layers(a, b):
    assert a.input.encoding == b.input.encoding and a.input.shape == b.input.shape
    for x, y in zip(a.layers, b.layers, strict=True):
        assert (x.kind, x.name[:2]) == (y.kind, y.name[:2])
        assert getattr(x, "geometry", None) == getattr(y, "geometry", None), x.name
        for name in ("weights", "thresholds", "mask"):
            u, v = getattr(x, name, None), getattr(y, name, None)
            assert (u is None) == (v is None), (x.name, name)
            assert u is None or np.array_equal(u, v), (x.name, name)


@pytest.mark.parametrize("net", range(len(CONV_NETS)))
@pytest.mark.parametrize("kind", list(KINDS))
def test_conv_model_round_trips(tmp_path, net, kind):
    model = random_conv_model(*CONV_NETS[net], seed=net + 3, **KINDS[kind])
    graph = _save_graph(model, tmp_path / "m.onnx", argmax=net == 0)
    assert {"Im2Col", "MaxPoolNHWC"} <= {n.op_type for n in graph.graph.node}
    _same_layers(model, _read_back(graph))


@pytest.mark.parametrize("net", list(PADDED_NETS))
def test_padded_conv_model_runs_exactly_and_round_trips(tmp_path, net):
    """Im2Col pads with the value of the layer's pad code, ``2a - L`` (-1 or +1 for bits):
    qonnx's executor gives the golden popcounts, import gives the pad and code back."""
    shape, stages, classes, kind = PADDED_NETS[net]
    model = random_conv_model(shape, stages, classes, seed=2, **kind)
    graph = _save_graph(model, tmp_path / "m.onnx")
    convs = [layer for layer in model.layers if hasattr(layer, "kernel")]
    assert [_attrs(n, "pad_amount", "pad_value") for n in graph.graph.node
            if n.op_type == "Im2Col"] == [
        ([c.pad] * 4, 2 * c.pad_value - (1 << c.in_bits) + 1) for c in convs]
    images = np.random.default_rng(0).integers(0, 256, size=(32, *model.input.shape)) / 255.0
    written = graph_from_bytes(export_graph(model).model.SerializeToString())   # as the CLI
    popcounts, classes = run_exported(written, model, images)
    result = golden.run_images(model, images)
    assert np.array_equal(popcounts, result.popcounts)
    assert np.array_equal(classes, result.classes)
    for i, layer in enumerate(model.layers):       # so the padding is seen on these images
        if getattr(layer, "pad", 0):
            other = 0 if layer.pad_value else 1
            swapped = [*model.layers[:i], dataclasses.replace(layer, pad_value=other),
                       *model.layers[i + 1:]]
            changed = golden.run_images(BnnModel(layers=swapped, input=model.input), images)
            assert not np.array_equal(changed.popcounts, result.popcounts), layer.name
    _same_layers(model, _read_back(graph))


def _attrs(node, *names):
    from onnx import helper

    found = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return tuple(found.get(name) for name in names)


@pytest.mark.parametrize("kind", list(KINDS))
def test_dense_model_round_trips(tmp_path, kind):
    _same_layers(model := random_model([30, 8, 7, 4], seed=1, **KINDS[kind]),
                 _read_back(_save_graph(model, tmp_path / "m.onnx", argmax=True)))


def test_thermometer_input_round_trips_through_the_cli(tmp_path, capsys):
    """A thermometer code is three centered copies of the pixels, level-major, each with its
    own weights: the metadata brings the thresholds back, no weight column is repeated."""
    m = random_model([192, 16, 10], seed=4)
    model = BnnModel(layers=m.layers, input=InputSpec(width=192, shape=(8, 8), encoding=THERMO),
                     provenance={"dataset": "digits", "split_seed": 0})
    src, path, back = tmp_path / "m.bnn", tmp_path / "m.onnx", tmp_path / "back.bnn"
    artifact.save(model, src)
    assert run_cli(capsys, "export-qonnx", src, "-o", path, "--argmax")[0] == 0
    code, stdout, err = run_cli(capsys, "import", path, "-o", back)
    assert (code, err) == (0, "")
    assert "input bit 1 where pixel >= 4, 8, 12 of 16" in stdout
    assert "359 / 359 test images of digits have equal classes" in stdout
    _same_layers(model, artifact.load(back))


def test_8_bit_conv_model_round_trips_through_the_cli(tmp_path, capsys):
    m = random_conv_model((8, 8, 1), [("conv", 4, 3), ("pool", 2), ("conv", 5, 2), ("dense", 6)],
                          10, seed=6, input_bits=8, act_bits=2)
    model = BnnModel(layers=m.layers, provenance={"dataset": "digits", "split_seed": 0},
                     input=InputSpec(width=64, shape=(8, 8),
                                     encoding={"kind": "pixels", "scale": 16.0, "bits": 8}))
    path, back = tmp_path / "m.onnx", tmp_path / "back.bnn"
    _save_graph(model, path)                  # the CLI's own export check is tested elsewhere
    code, stdout, err = run_cli(capsys, "import", path, "-o", back)
    assert (code, err) == (0, "")
    assert "input: one 8-bit level per pixel (pixels)" in stdout
    assert "359 / 359 test images of digits have equal classes" in stdout
    _same_layers(model, artifact.load(back))


@pytest.mark.parametrize("kind", ["binary", "all three"])
@pytest.mark.parametrize("net", [0, 2, 3])
def test_maps_of_several_channels_round_trip_through_the_cli(tmp_path, capsys, net, kind):
    # export-qonnx's input is flat and channels-last; import fed it NCHW-shaped images and
    # refused every model of two or more input channels.
    src, path, back = tmp_path / "m.bnn", tmp_path / "m.onnx", tmp_path / "back.bnn"
    model = random_conv_model(*CONV_NETS[net], seed=net + 3, **KINDS[kind])
    artifact.save(model, src)
    assert run_cli(capsys, "export-qonnx", src, "-o", path)[0] == 0
    code, stdout, err = run_cli(capsys, "import", path, "--dataset", "none", "-o", back)
    assert (code, err) == (0, "")
    assert "512 / 512 random images have equal classes" in stdout
    _same_layers(model, artifact.load(back))


def test_raw_uint8_levels_into_the_first_matmul_import_exactly(tmp_path, digits):
    """FINN feeds images as UINT8 levels ``a``; without export-qonnx's ``Mul(2), Add(-255)``
    the first layer reads ``a = (v + 255) / 2``: an offset of ``255 * sum w`` per neuron."""
    model = random_conv_model((8, 8, 1), [("conv", 6, 3), ("pool", 2), ("dense", 9)], 10,
                              seed=2, input_bits=8)
    model = BnnModel(layers=model.layers,
                     input=InputSpec(width=64, shape=(8, 8),
                                     encoding={"kind": "pixels", "scale": 16.0, "bits": 8}))
    wrapper = export_graph(model)
    graph = wrapper.model.graph
    mul, add = (n for n in graph.node if n.op_type in ("Mul", "Add") and
                n.name.startswith("input"))
    consumer = next(n for n in graph.node if add.output[0] in n.input)
    consumer.input[list(consumer.input).index(add.output[0])] = mul.input[0]
    graph.node.remove(mul)
    graph.node.remove(add)
    del wrapper.model.metadata_props[:]
    onnx.save(wrapper.model, str(tmp_path / "raw.onnx"))
    raw = load_graph(tmp_path / "raw.onnx")
    back = _read_back(raw, (8, 8), 16.0)
    assert back.input.encoding == {"kind": "pixels", "scale": 16.0, "bits": 8}
    levels = back.input.encode(digits.x_test[:40]).astype(np.float32)
    scores = np.concatenate([execute(raw, levels[i:i + 1]).reshape(1, -1) for i in range(40)])
    result = golden.run_images(back, digits.x_test[:40])
    assert np.array_equal(scores, result.popcounts.astype(np.float32))
    # the same network read with the offset: thresholds moved by the weights' sums
    assert not np.array_equal(back.layers[0].thresholds, model.layers[0].thresholds)


def test_encoded_input_refuses_input_options_in_one_line(tmp_path, capsys):
    m = random_model([64, 8, 10], seed=0)
    model = BnnModel(layers=m.layers, input=InputSpec(width=64, shape=(8, 8), encoding={
        "kind": "threshold", "scale": 16.0, "threshold": 0.5}),
        provenance={"dataset": "digits", "split_seed": 0})
    src, path = tmp_path / "m.bnn", tmp_path / "m.onnx"
    artifact.save(model, src)
    assert run_cli(capsys, "export-qonnx", src, "-o", path)[0] == 0
    assert import_refused(capsys, path, "--input-offset", "0.5") == (
        "error: the graph's input is encoded: its bnnflow_input metadata (written by "
        "export-qonnx) says how it encodes the pixels; drop --input-scale and --input-offset\n")
    assert import_refused(capsys, path, "--dataset", "mnist5k") == (
        "error: the graph's input encodes images of shape [8, 8], the data set's are [28, 28]; "
        "choose the data set the network was trained on with --dataset\n")


@pytest.mark.parametrize(("net", "attrs", "message"), [
    (None, {"stride": [2, 1]}, "stride [2, 1]; bnnflow builds convolutions with equal strides "
                               "along both axes"),
    (None, {"pad_amount": [1, 1, 1, 1]}, "pad_amount [1, 1, 1, 1] with pad_value 0, which no "
                                         "input code has (codes are worth -1, +1); a +-1 map "
                                         "has no 0 to pad with: train the network with "
                                         "padding=0"),
    (None, {"pad_amount": [1, 0, 1, 0], "pad_value": 1}, "pad_amount [1, 0, 1, 0]; bnnflow "
                                                         "pads a convolution alike on all four "
                                                         "sides (train the network with one "
                                                         "padding p for both axes)"),
    (None, {"pad_amount": [2, 2, 2, 2], "pad_value": 1}, "pad_amount [2, 2, 2, 2]; bnnflow "
                                                         "pads a 2x2 convolution by 0..1 (less "
                                                         "than the kernel)"),
    ("2-bit", {"pad_value": 0}, "pad_amount [1, 1, 1, 1] with pad_value 0, which no input code "
                                "has (codes are worth -3, -1, +1, +3); give pad_value the value "
                                "of an input code"),
])
def test_im2col_windows_bnnflow_cannot_build_are_refused(tmp_path, net, attrs, message):
    from onnx import helper

    from bnnflow.model.qonnx_graph import QonnxError

    model = (random_conv_model(*CONV_NETS[0], seed=3) if net is None
             else random_conv_model(*PADDED_NETS[net][:3], seed=2, **PADDED_NETS[net][3]))
    wrapper = export_graph(model)
    node = [n for n in wrapper.model.graph.node if n.op_type == "Im2Col"][-1]
    for a in list(node.attribute):
        if a.name in attrs:
            node.attribute.remove(a)
    node.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items())
    onnx.save(wrapper.model, str(tmp_path / "bad.onnx"))
    loaded = load_graph(tmp_path / "bad.onnx")
    with pytest.raises(QonnxError, match=r"\(Im2Col\): " + re.escape(message) + "$"):
        _read_back(loaded)


def test_integer_input_scaled_per_pixel_is_refused(tmp_path):
    """Levels scaled by a different constant per pixel are no input encoding of bnnflow."""
    from onnx import numpy_helper

    from bnnflow.model.qonnx_graph import QonnxError

    model = random_model([6, 4, 3], seed=2, input_bits=8)
    wrapper = export_graph(model)
    graph = wrapper.model.graph
    mul = next(n for n in graph.node if n.name == "input_mul")
    graph.initializer.append(numpy_helper.from_array(
        np.arange(1, 7, dtype=np.float32).reshape(1, 6), "per_pixel"))
    mul.input[1] = "per_pixel"
    del wrapper.model.metadata_props[:]
    onnx.save(wrapper.model, str(tmp_path / "bad.onnx"))
    with pytest.raises(QonnxError, match=r"\(Mul\): the input stage of an integer input may "
                                         r"only scale and shift every level alike"):
        _read_back(load_graph(tmp_path / "bad.onnx"), (6,), 1.0)


def test_integer_input_mapped_to_falling_values_is_refused(tmp_path):
    from onnx import numpy_helper

    from bnnflow.model.qonnx_graph import QonnxError

    wrapper = export_graph(random_model([6, 4, 3], seed=2, input_bits=8))
    graph = wrapper.model.graph
    mul = next(n for n in graph.node if n.name == "input_mul")
    graph.initializer.append(numpy_helper.from_array(np.float32(-2.0), "minus_two"))
    mul.input[1] = "minus_two"
    del wrapper.model.metadata_props[:]
    onnx.save(wrapper.model, str(tmp_path / "falling.onnx"))
    with pytest.raises(QonnxError, match=r"^the input stage maps the 8-bit levels to values that "
                                         r"are not evenly spaced and rising \(\[-255.0, -257.0, "
                                         r"-259.0\], ...\); bnnflow reads n-bit inputs as the "
                                         r"levels 2a - 255$"):
        _read_back(load_graph(tmp_path / "falling.onnx"), (6,), 1.0)


def test_unreadable_bnnflow_input_metadata_is_refused(tmp_path):
    from bnnflow.model.qonnx_graph import QonnxError

    wrapper = export_graph(random_model([6, 4, 3], seed=2))
    wrapper.set_metadata_prop("bnnflow_input", '{"encoding": {"kind": "gray"}, "shape": [6]}')
    onnx.save(wrapper.model, str(tmp_path / "meta.onnx"))
    with pytest.raises(QonnxError, match=r"^the graph's encoded input \(its bnnflow_input "
                                         r"metadata\) is not an input bnnflow reads \(unknown "
                                         r"input encoding 'gray'.*\); re-export it with bnnflow "
                                         r"export-qonnx$"):
        _read_back(load_graph(tmp_path / "meta.onnx"))
