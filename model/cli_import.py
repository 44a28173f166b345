"""Import a binarized QONNX graph (Brevitas export_qonnx, FINN streamlined) as a .bnn model.

Reads BipolarQuant / Quant (1-bit, n-bit activations: narrow-range, signed, or unsigned as
Brevitas' QuantReLU; 2-bit ternary weights; an n-bit input such as Brevitas CNV's 8-bit one),
MatMul / Gemm, Conv (equal strides; padding alike on all sides whose 0 is an input code's value,
as of QuantReLU levels; a bias in hidden layers) and MaxPool,
BatchNormalization, Relu, MultiThreshold, Mul / Add / Sub / Div and Reshape / Flatten,
and FINN's lowered Im2Col and MaxPoolNHWC (export-qonnx's graphs read back exactly, their input
from their metadata; a UINTn input is n-bit pixel levels); folds each hidden layer into integer
popcount thresholds exactly (negative scales flip the neuron's weights) and checks that the
last layer's scores order the classes as its popcounts do. The graph's input for a pixel v is v
/ input-scale - input-offset, as float32; its input quantizer must quantize every pixel at the
same levels, which become the model's input threshold, thermometer code or n-bit pixel levels;
colour images (cifar10) go to an NCHW input transposed. Before writing, qonnx's executor runs
the graph and the golden model runs the new .bnn on the test split of --dataset: the file is
written only when every class agrees. The source file's sha256 goes into the provenance."""

import math
from dataclasses import dataclass

import numpy as np

from ..fileio import check_output_file

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    from .data import DATASETS

    parser.add_argument("model", metavar="MODEL.onnx",
                        help="QONNX file, e.g. from brevitas.export.export_qonnx (weights in "
                             "MODEL.onnx.data beside it are read too)")
    parser.add_argument("-o", "--out", required=True, metavar="OUT.bnn",
                        help="the .bnn file to write")
    parser.add_argument("--dataset", choices=(*DATASETS, "none"), default="digits",
                        help="data set the network was trained on; its test split checks the "
                             "import (default: digits); none: check on --random-images images "
                             "of the graph's input shape, pixels 0..255 (0..--input-scale)")
    parser.add_argument("--random-images", type=int, default=512, metavar="N",
                        help="random images for --dataset none (default: 512)")
    parser.add_argument("--data-dir", metavar="DIR", help="directory of mnist or cifar10 files")
    parser.add_argument("--split-seed", type=int, default=0,
                        help="seed of the train/test split (default: 0)")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="test fraction of the split (default: 0.2)")
    parser.add_argument("--input-scale", type=float, default=None, metavar="S",
                        help="the graph's input is pixel / S - offset (default: the data set's "
                             "full scale, 16 for digits and 255 for MNIST and CIFAR-10, so "
                             "inputs in [0, 1]); a UINTn graph input takes the level "
                             "round(pixel / S * (2**n - 1)); not for export-qonnx's graphs, "
                             "whose metadata gives their input")
    parser.add_argument("--input-offset", type=float, default=0.0, metavar="B",
                        help="subtracted after the scaling (default: 0; only for float graph "
                             "inputs)")


def _shape_text(model):
    return "-".join(str(w) for w in model.widths)


@dataclass
class _CheckData:
    """The images that check an import: a data set's test split, or random images."""

    name: str
    shape: tuple
    scale: float
    x_test: np.ndarray
    y_test: np.ndarray | None
    classes: tuple = ()


def _check_data(args, graph):
    """The test split of ``--dataset``, or for ``none`` ``--random-images`` seeded random
    integer pixels of the graph's own image shape, 0..255 (0..``--input-scale``)."""
    from .data import load_dataset
    from .qonnx_graph import QonnxError
    from .qonnx_input import image_shape

    if args.dataset != "none":
        ds = load_dataset(args.dataset, data_dir=args.data_dir, split_seed=args.split_seed,
                          test_fraction=args.test_fraction)
        return _CheckData(f"test images of {ds.name}", tuple(ds.shape), float(ds.scale),
                          ds.x_test, ds.y_test, tuple(ds.classes))
    if args.random_images < 1:
        raise QonnxError(f"--random-images must be a positive number, not "
                         f"{args.random_images}")
    shape, full = image_shape(graph)
    full = float(args.input_scale if args.input_scale is not None else full or 255.0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, int(full) + 1, size=(args.random_images, *shape)).astype(float)
    return _CheckData("random images", shape, full, images, None)


def _graph_scores(graph, route, x):
    """The scores ``(B, classes)`` that qonnx's executor gives for the graph input ``x``: the
    output of the path's last node (before an ``ArgMax``); FINN's ``Im2Col`` nodes run image
    by image (:func:`~bnnflow.model.qonnx_batch.batched`)."""
    from .qonnx_batch import batched
    from .qonnx_graph import execute

    tensor = route[-1].output[0]
    return execute(batched(graph, len(x)), x, tensor=tensor).reshape(len(x), -1)


def _graph_input_text(graph_input):
    """The provenance's account of what the graph's input is for a pixel."""
    if graph_input.encoded:
        return {"formula": "the input encoding's values: n-bit pixel levels, or pixel / scale "
                           "- threshold per threshold (float32), as export-qonnx writes"}
    return {"input_scale": float(graph_input.input_scale),
            "input_offset": float(graph_input.input_offset),
            "formula": "pixel / input_scale - input_offset (float32)"}


def _count(n, thing):
    return f"{n} {thing}" + ("" if n == 1 else "s")


def _bias_text(extra):
    """How the last hidden layer was changed to carry the output layer's bias."""
    factor = extra.get("factor", 1)
    if factor > 1:
        top = (1 << extra["bits"]) - 1
        what = f"0 or {top}" if factor == top else f"{factor} times the old ones"
        return (f"levels widened to {extra['bits']} bits ({what}: the output layer weighs "
                f"each input {factor} times) and ")
    if extra.get("reads", 1) > 1:
        return f"read {extra['reads']} times by the output layer and "
    return ""


def _input_text(enc):
    from .encoding import ELEMENT_KINDS, thresholds_of

    if enc["kind"] in ELEMENT_KINDS:
        return f"input: one {enc['bits']}-bit level per pixel ({enc['kind']})"
    levels = ", ".join(f"{t * enc['scale']:g}" for t in thresholds_of(enc))
    return f"input bit 1 where pixel >= {levels} of {enc['scale']:g}"


def run(args):
    from . import artifact, golden
    from .conventions import argmax_lowest
    from .qonnx_graph import QonnxError, file_sha256, load_graph
    from .qonnx_import import data_path, import_graph
    from .qonnx_input import read_input

    out = check_output_file(args.out, "-o", inputs=[args.model])
    if args.input_scale is not None and not 0 < args.input_scale < math.inf:
        raise QonnxError(f"--input-scale must be a positive number, not {args.input_scale!r}")
    if not math.isfinite(args.input_offset):
        raise QonnxError(f"--input-offset must be a finite number, not {args.input_offset!r}")
    graph = load_graph(args.model)
    ds = _check_data(args, graph)
    route = data_path(graph)
    graph_input = read_input(graph, route, ds.shape, ds.scale, args.input_scale,
                             args.input_offset)
    built = import_graph(graph, graph_input, route)
    spec = graph_input.spec
    scores = _graph_scores(graph, route, graph_input.feed(graph, ds.x_test))
    if scores.shape[1] != built.num_classes:
        raise QonnxError(f"the graph outputs {scores.shape[1]} scores per image, the imported "
                         f"model {built.num_classes}")
    graph_classes = argmax_lowest(scores)
    result = golden.run_images(built, ds.x_test)
    agree = graph_classes == result.classes
    n = len(agree)
    if not agree.all():
        i = int(np.flatnonzero(~agree)[0])
        raise QonnxError(f"the imported model disagrees with the QONNX graph on "
                         f"{n - int(agree.sum())} of {n} {ds.name} (first: "
                         f"image {i}, graph class {graph_classes[i]}, golden model class "
                         f"{result.classes[i]}); nothing written")
    accuracy = None if ds.y_test is None else float(np.mean(result.classes == ds.y_test))
    sha = file_sha256(args.model)
    provenance = {
        "source": "qonnx", "source_file": str(args.model), "source_sha256": sha,
        "graph_input": _graph_input_text(graph_input),
        "agreement": {"images": n, "equal_classes": int(agree.sum()),
                      "against": "qonnx.core.onnx_exec.execute_onnx"},
        "test_accuracy": accuracy, **built.provenance,
    }
    if ds.y_test is None:
        provenance.update(dataset=None, random_images={"count": n, "seed": 0,
                                                       "pixels": f"0..{ds.scale:g}"})
    else:
        provenance.update(dataset=args.dataset, data_dir=args.data_dir, split_seed=args.split_seed,
                          test_fraction=args.test_fraction)
    classes = ds.classes if len(ds.classes) == built.num_classes else ()
    model = artifact.BnnModel(layers=built.layers, input=spec, classes=classes,
                              provenance=provenance)
    checksum = artifact.save(model, out)
    print(f"imported {args.model} ({sha[:19]}...): {_shape_text(model)}, "
          f"{_count(len(model.layers), 'layer')}; {_input_text(spec.encoding)}")
    extra = built.provenance.get("offset_neurons")
    if extra:
        print(f"{extra['layer']}: {extra['count']} constant neurons added to carry the output "
              f"layer's per-class offset (its inputs are levels with offset {extra['offset']})")
    extra = built.provenance.get("bias_neurons")
    if extra:
        what = (_count(extra["channels"], "constant channel") if "channels" in extra
                else _count(extra["count"], "constant neuron"))
        print(f"{extra['layer']}: {_bias_text(extra)}{what} added to carry the output layer's "
              f"bias")
    distinct = len(np.unique(spec.encode(ds.x_test).reshape(n, -1), axis=0))
    if distinct < min(n, 2):
        print(f"note: the {n} {ds.name} encode to {distinct} distinct input, so the agreement "
              f"below checks that one only; --input-scale and --input-offset say how pixels "
              f"map to the graph's input")
    print(f"agreement with the QONNX graph (qonnx executor): {int(agree.sum())} / {n} "
          f"{ds.name} have equal classes")
    if accuracy is not None:
        print(f"golden model test accuracy: {100 * accuracy:.2f} %")
    print(f"wrote {out} ({checksum})")
    return 0
