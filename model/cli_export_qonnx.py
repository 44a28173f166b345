"""Write a .bnn model as a QONNX graph (bipolar weights, MultiThreshold, popcount scores).

The graph takes the centered input (pixel / scale - threshold, per threshold of the model's
encoding, level-major, float32, batch 1), binarizes it with BipolarQuant, runs each hidden
layer as MatMul and MultiThreshold (thresholds 2T - K on the dot product, outputs +-1) and
ends with the popcounts of the output layer (MatMul, + K, x 0.5), or with --argmax their
ArgMax (the lowest index on ties). Conv and max-pool layers are FINN's lowered NHWC form
(Im2Col, MatMul, MultiThreshold, MaxPoolNHWC; :mod:`bnnflow.model.qonnx_conv`). Before
writing, qonnx's executor runs the graph on the model's test split (from its provenance; 512
random images for a model without a data set) and the file is written only when its popcounts
and classes equal the golden model's. qonnx's Im2Col is right for batch 1 only: the check runs a
copy of the graph whose Im2Col nodes go image by image inside the node
(:mod:`bnnflow.model.qonnx_batch`); 21 s for a cnv-mnist model on the 1000 mnist5k test images.
"""

import numpy as np

from ..fileio import check_output_file, write_bytes_atomic

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("model", metavar="MODEL", help="path of a .bnn file")
    parser.add_argument("-o", "--out", required=True, metavar="OUT.onnx",
                        help="the QONNX file to write")
    parser.add_argument("--argmax", action="store_true",
                        help="end the graph with ArgMax: its output is the class (int64) "
                             "instead of the popcounts")
    parser.add_argument("--random-images", type=int, default=512, metavar="N",
                        help="random images to check a model that names no data set "
                             "(default: 512)")


def _check_images(model, count):
    """``(images, description)``: the model's test split, or seeded random images."""
    from .data import test_split_for

    if (model.provenance or {}).get("dataset") is not None:   # its split, or one line why not
        images, _ = test_split_for(model)
        return images, f"test images of {model.provenance['dataset']}"
    enc = model.input.encoding
    shape = tuple(model.input.shape) or (model.input.width // model.input.levels,)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 17, size=(count, *shape)) / 16.0 * float(enc["scale"])
    return images, "random images (the model names no data set)"


def run(args):
    from . import artifact, golden
    from .qonnx_export import export_graph, run_exported
    from .qonnx_graph import QonnxError, graph_from_bytes

    if args.random_images < 1:
        raise QonnxError(f"--random-images must be a positive number, not "
                         f"{args.random_images}")
    out = check_output_file(args.out, "-o", inputs=[args.model])
    model = artifact.load(args.model)
    wrapper = export_graph(model, argmax=args.argmax)
    data = wrapper.model.SerializeToString()
    images, what = _check_images(model, args.random_images)
    popcounts, classes = run_exported(graph_from_bytes(data), model, images)
    result = golden.run_images(model, images)
    equal_counts = np.all(popcounts == result.popcounts, axis=1)
    agree = classes == result.classes
    n = len(agree)
    if not (agree.all() and equal_counts.all()):
        i = int(np.flatnonzero(~(agree & equal_counts))[0])
        raise QonnxError(f"the exported graph disagrees with the golden model on "
                         f"{n - int((agree & equal_counts).sum())} of {n} {what} (first: "
                         f"image {i}, graph class {classes[i]}, golden class "
                         f"{result.classes[i]}); nothing written")
    write_bytes_atomic(out, data)
    widths = "-".join(str(w) for w in model.widths)
    ops = ", ".join(sorted({node.op_type for node in wrapper.graph.node}))
    print(f"exported {args.model} ({widths}) as QONNX: {len(wrapper.graph.node)} nodes "
          f"({ops})")
    print(f"agreement (qonnx executor vs golden model): {int(agree.sum())} / {n} {what} have "
          f"equal classes, {int(equal_counts.sum())} / {n} equal popcounts")
    print(f"wrote {out} ({len(data)} bytes)")
    return 0
