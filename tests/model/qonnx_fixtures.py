"""Builders for the QONNX tests: a small Brevitas W1A1 MLP trained on the digits and exported
with ``brevitas.export.export_qonnx``, and tiny hand-made QONNX graphs (onnx.helper) for the
cases the importer must refuse."""

import contextlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

QONNX_DOMAIN = "qonnx.custom_op.general"

#: Brevitas warns on import about its own deprecated fx module and a missing optional kernel
#: package; the tests that use Brevitas ignore these and nothing else.
BREVITAS_WARNINGS = [pytest.mark.filterwarnings("ignore:brevitas.fx is deprecated"),
                     pytest.mark.filterwarnings("ignore:fast_hadamard_transform package not found")]


@contextlib.contextmanager
def one_torch_thread():
    """Torch on one thread for the block: the suite's two pytest-xdist workers share two cores,
    and torch's default of one thread per core makes them wait on each other (training the
    4-bit MLP 3 epochs: 15 s on two threads, 2 s on one); and a trained net then does not
    depend on the machine's cores or on running under xdist (tests pick seeds on one thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_cli(capsys, *argv):
    """``bnnflow ARGV``: ``(exit status, stdout, stderr)``."""
    from bnnflow.cli import main

    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def import_refused(capsys, path, *options):
    """``bnnflow import PATH -o OUT OPTIONS`` that must stop with exit status 2, one line on
    stderr, nothing on stdout and no file written; returns the line."""
    out = Path(path).with_suffix(".refused.bnn")
    code, stdout, err = run_cli(capsys, "import", path, "-o", out, *options)
    assert (code, stdout) == (2, "")
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1
    assert not out.exists()
    return err


def brevitas_mlp(widths=(64, 32, 10), seed=0, out_scale=1.0):
    """A Brevitas W1A1 MLP in FINN's TFC style: the input (in [0, 1]) mapped to ``2x - 1`` and
    binarized, hidden ``QuantLinear`` layers (``SignedBinaryWeightPerTensorConst``, scale 0.1)
    with ``BatchNorm1d`` and a binary activation, an output ``QuantLinear`` with weight scale
    ``out_scale`` and FINN's ``TensorNorm`` (one shared scale and offset)."""
    import brevitas.nn as qnn
    from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
    from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm

    class OutWeight(SignedBinaryWeightPerTensorConst):
        scaling_const = out_scale

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(seed)
            self.inq = qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
            layers = []
            for k, n in zip(widths[:-2], widths[1:-1], strict=True):
                layers += [qnn.QuantLinear(k, n, bias=False,
                                           weight_quant=SignedBinaryWeightPerTensorConst),
                           nn.BatchNorm1d(n),
                           qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst)]
            layers += [qnn.QuantLinear(widths[-2], widths[-1], bias=False,
                                       weight_quant=OutWeight), TensorNorm()]
            self.body = nn.Sequential(*layers)

        def forward(self, x):
            x = x.reshape(x.shape[0], -1)
            return self.body(self.inq(2.0 * x - 1.0))

    return Mlp()


def brevitas_cnn(seed=0, padding=0, stride=1, pool="max", weight_bits=1, act_bits=1,
                 in_bits=1, out_bits=1):
    """A Brevitas W1A1 CNN over 8x8 images: the input mapped to ``2x - 1`` and binarized,
    ``QuantConv2d(1, 8, 3)``, ``BatchNorm2d``, a binary activation, ``MaxPool2d(2)``,
    ``QuantConv2d(8, 6, 2)``, ``BatchNorm2d``, a binary activation, flattened (NCHW) into an
    output ``QuantLinear`` (scale 1.0) and FINN's ``TensorNorm``. ``padding`` and ``stride``
    go to the first convolution; ``pool="avg"`` makes the pool an ``AvgPool2d``,
    ``pool="ceil"`` a ``MaxPool2d`` with ``ceil_mode``, ``pool="overlap"`` a ``MaxPool2d(3,
    stride=1)`` (windows that overlap, three open at once). With
    ``weight_bits`` or ``act_bits`` 2 the convolutions and their activations use bnn_pynq's
    ``CommonWeightQuant`` / ``CommonActQuant`` at that width (ternary weights, levels -1, 0,
    +1); ``in_bits`` 2 quantizes the input to -1, 0, +1 the same way, ``in_bits`` 8 as
    Brevitas' CNV does (:func:`cnv_input_quant`), ``out_bits`` 2 makes the output layer's
    weights ternary."""
    import brevitas.nn as qnn
    from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
    from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm

    class OutWeight(SignedBinaryWeightPerTensorConst):
        scaling_const = 1.0

    from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant

    def act(bits=1):
        if bits > 1:
            return qnn.QuantIdentity(act_quant=CommonActQuant, bit_width=bits)
        return qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst)

    def conv(cin, cout, k, **kw):
        if weight_bits > 1:
            layer = qnn.QuantConv2d(cin, cout, k, bias=False, weight_quant=CommonWeightQuant,
                                    weight_bit_width=weight_bits, **kw)
            nn.init.uniform_(layer.weight, -1.0, 1.0)      # as bnn_pynq: scale 1, not all 0
            return layer
        return qnn.QuantConv2d(cin, cout, k, bias=False,
                               weight_quant=SignedBinaryWeightPerTensorConst, **kw)

    class Cnn(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(seed)
            self.inq = cnv_input_quant() if in_bits == 8 else act(in_bits)
            mapped = (8 + 2 * padding - 3) // stride + 1
            pooled = mapped - 2 if pool == "overlap" else mapped // 2
            k2 = min(2, pooled)                    # a stride of 2 leaves a 1x1 map
            side = pooled - k2 + 1
            self.body = nn.Sequential(
                conv(1, 8, 3, padding=padding, stride=stride), nn.BatchNorm2d(8),
                act(act_bits), {"max": nn.MaxPool2d(2), "avg": nn.AvgPool2d(2),
                                "ceil": nn.MaxPool2d(2, ceil_mode=True),
                                "overlap": nn.MaxPool2d(3, stride=1)}[pool],
                conv(8, 6, k2), nn.BatchNorm2d(6), act(act_bits), nn.Flatten(),
                qnn.QuantLinear(6 * side * side, 10, bias=False, weight_quant=OutWeight)
                if out_bits == 1 else
                qnn.QuantLinear(6 * side * side, 10, bias=False, weight_quant=CommonWeightQuant,
                                weight_bit_width=out_bits),
                TensorNorm())

        def forward(self, x):
            return self.body(self.inq(2.0 * x.reshape(x.shape[0], 1, 8, 8) - 1.0))

    return Cnn()


def cnv_input_quant():
    """Brevitas CNV's input quantizer (``brevitas_examples.bnn_pynq.models.CNV``): signed 8-bit
    Q1.7 without narrow range, levels ``-128..127`` times ``2**-7``."""
    import brevitas.nn as qnn
    from brevitas.core.restrict_val import RestrictValueType
    from brevitas_examples.bnn_pynq.models.common import CommonActQuant

    return qnn.QuantIdentity(act_quant=CommonActQuant, bit_width=8, min_val=-1.0,
                             max_val=1.0 - 2.0 ** -7, narrow_range=False,
                             restrict_scaling_type=RestrictValueType.POWER_OF_TWO)


@one_torch_thread()
def brevitas_cnv(weight_bits=1, act_bits=1, seed=0, batches=3):
    """Brevitas' own bnn_pynq ``CNV`` (FINN's CIFAR-10 network, 32x32x3, 8-bit input) as its
    ``cnv_{weight_bits}w{act_bits}a`` configuration builds it, untrained: bnn_pynq's uniform
    weights, and BatchNorm statistics from ``batches`` batches of random images so that the
    thresholds differ per channel; eval mode."""
    from brevitas_examples.bnn_pynq.models.CNV import CNV

    torch.manual_seed(seed)
    net = CNV(num_classes=10, weight_bit_width=weight_bits, act_bit_width=act_bits,
              in_bit_width=8, in_ch=3)
    net.train()
    with torch.no_grad():
        for _ in range(batches):
            net(torch.rand(16, 3, 32, 32))
    return net.eval()


def brevitas_bnn_pynq_fc(weight_bits=1, act_bits=2, in_bits=2, hidden=(32, 24), seed=0):
    """Brevitas' own bnn_pynq ``FC`` (the TFC/SFC/LFC family of FINN) over 8x8 images:
    narrow-range ``CommonActQuant`` activations of ``act_bits`` and input of ``in_bits``,
    ``CommonWeightQuant`` weights of ``weight_bits`` (scale 1), BatchNorm1d, TensorNorm."""
    from brevitas_examples.bnn_pynq.models.FC import FC

    torch.manual_seed(seed)
    return FC(num_classes=10, weight_bit_width=weight_bits, act_bit_width=act_bits,
              in_bit_width=in_bits, in_channels=1, out_features=list(hidden),
              in_features=(8, 8))


@one_torch_thread()
def train_brevitas(net, x, y, epochs=6, seed=0, batch=64):
    """A few epochs of Adam on inputs ``x`` (in [0, 1]) and labels ``y``; returns ``net`` in
    eval mode."""
    gen = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.int64)
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(batch):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    return net.eval()


@torch.no_grad()
@one_torch_thread()
def brevitas_classes(net, x):
    """Brevitas' own eval-mode classes (torch argmax: the first maximum)."""
    return net.eval()(torch.as_tensor(x, dtype=torch.float32)).argmax(dim=1).numpy()


@one_torch_thread()
def export_brevitas(net, path, shape=(8, 8), dynamo=True):
    """``brevitas.export.export_qonnx`` of ``net`` for one ``shape`` image (``dynamo=False``:
    the TorchScript exporter, whose graph differs in form)."""
    from brevitas.export import export_qonnx

    export_qonnx(net.eval(), torch.zeros(1, *shape), export_path=str(path), dynamo=dynamo)
    return path


@one_torch_thread()
def import_untrained_cnn(net, tmp_path, capsys):
    """``net`` (a :func:`brevitas_cnn`) with BatchNorm statistics from three batches of random
    images (off the dot lattice, so decisions are exact), exported and run through
    ``bnnflow import``; the loaded model."""
    from bnnflow.model import artifact

    with torch.no_grad():
        net.train()
        for _ in range(3):
            net(torch.rand(64, 64))
    path = export_brevitas(net.eval(), tmp_path / "cnn.onnx")
    capsys.readouterr()
    out = tmp_path / "cnn.bnn"
    code, _, err = run_cli(capsys, "import", path, "-o", out)
    assert (code, err) == (0, "")
    return artifact.load(out)


def _init(name, value):
    value = np.asarray(value, dtype=np.float32)
    return helper.make_tensor(name, TensorProto.FLOAT, value.shape, value.ravel())


def tiny_graph(path, *, weight_bits=1, extra_op=None, two_inputs=False, out_bn=False, seed=0,
               input_shape=(1, 64), input_type=TensorProto.FLOAT):
    """A hand-made QONNX MLP 64-16-10: BipolarQuant on the input, ``Quant`` (``weight_bits``)
    weights, MatMul, BatchNormalization (scales of both signs), BipolarQuant, MatMul.
    ``extra_op`` inserts one node of that op type after the first BatchNorm; ``two_inputs``
    adds a second graph input; ``out_bn`` a per-class BatchNormalization at the end;
    ``input_shape`` (names for symbolic dimensions) and ``input_type`` declare the input."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("BipolarQuant", ["x", "one"], ["xq"], domain=QONNX_DOMAIN,
                              name="in_quant"),
             helper.make_node("Quant", ["w0", "one", "zero", "bits"], ["w0q"],
                              domain=QONNX_DOMAIN, name="w0_quant", signed=1, narrow=0,
                              rounding_mode="ROUND"),
             helper.make_node("MatMul", ["xq", "w0q"], ["z0"], name="fc0"),
             helper.make_node("BatchNormalization", ["z0", "g", "b", "m", "v"], ["y0"],
                              name="bn0")]
    last = "y0"
    if extra_op:
        nodes.append(helper.make_node(extra_op, [last], ["e0"], name="extra"))
        last = "e0"
    nodes += [helper.make_node("BipolarQuant", [last, "one"], ["a0"], domain=QONNX_DOMAIN,
                               name="act0"),
              helper.make_node("MatMul", ["a0", "w1"], ["z1" if out_bn else "out"], name="fc1")]
    if out_bn:
        nodes.append(helper.make_node("BatchNormalization", ["z1", "g1", "b1", "m1", "v1"],
                                      ["out"], name="bn1"))
    inits = [_init("one", 1.0), _init("zero", 0.0), _init("bits", float(weight_bits)),
             _init("w0", rng.normal(size=(64, 16))),
             _init("g", rng.uniform(0.5, 1.5, 16) * np.where(np.arange(16) % 3, 1, -1)),
             _init("b", rng.normal(size=16)), _init("m", rng.normal(size=16) * 2),
             _init("v", rng.uniform(1, 10, 16)),
             _init("w1", np.where(rng.normal(size=(16, 10)) >= 0, 1.0, -1.0)),
             _init("g1", rng.uniform(0.5, 1.5, 10)), _init("b1", rng.normal(size=10)),
             _init("m1", rng.normal(size=10)), _init("v1", rng.uniform(1, 2, 10))]
    inputs = [helper.make_tensor_value_info("x", input_type, list(input_shape))]
    if two_inputs:
        inputs.append(helper.make_tensor_value_info("x2", TensorProto.FLOAT, [1, 64]))
    graph = helper.make_graph(nodes, "tiny", inputs,
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 10])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid(QONNX_DOMAIN, 1)])
    onnx.save(model, str(path))
    return path


def brevitas_relu_net(bits=2, conv=False, float_scale=False, seed=0, hidden_dense=True,
                      in_bits=1, signed=False, ternary_out=False, narrow=False):
    """A Brevitas network with ``QuantReLU`` activations (unsigned ``bits``-bit levels) over 8x8
    images: the input mapped to ``2x - 1`` and binarized, binary weights of scale 1, each
    hidden layer ``BatchNorm`` then ``QuantReLU`` with a power-of-two scale (with
    ``float_scale`` the first one's is a learned float, as Brevitas' default), and an output
    ``QuantLinear`` with ``TensorNorm``. Dense: 64-48-32-10. ``conv``: ``QuantConv2d(1, 8, 3)``,
    ``MaxPool2d(2)``, then dense 72-24-10 (72-10 without ``hidden_dense``). ``in_bits`` > 1:
    the input (in [0, 1]) goes to an unsigned ``in_bits``-bit ``QuantIdentity`` with a
    power-of-two scale instead. ``signed``: Brevitas' default signed ``QuantIdentity`` (levels
    ``-2**(n-1) .. 2**(n-1) - 1``, no narrow range; with ``narrow`` from ``-2**(n-1) + 1``) in
    place of each ``QuantReLU``.
    ``ternary_out``: the output layer's weights are ternary (bnn_pynq's 2-bit
    ``CommonWeightQuant``)."""
    import brevitas.nn as qnn
    from brevitas.core.restrict_val import RestrictValueType
    from brevitas.quant import (
        SignedBinaryActPerTensorConst,
        SignedBinaryWeightPerTensorConst,
        Uint8ActPerTensorFloat,
    )
    from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm

    class Weight(SignedBinaryWeightPerTensorConst):
        scaling_const = 1.0

    def relu(pot=True):
        kw = {"restrict_scaling_type": RestrictValueType.POWER_OF_TWO} if pot else {}
        if signed:
            return qnn.QuantIdentity(bit_width=bits, narrow_range=narrow, **kw)
        return qnn.QuantReLU(bit_width=bits, **kw)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(seed)
            self.inq = qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
            if in_bits > 1:
                self.inq = qnn.QuantIdentity(
                    act_quant=Uint8ActPerTensorFloat, bit_width=in_bits,
                    restrict_scaling_type=RestrictValueType.POWER_OF_TWO)
            if conv:
                first = [qnn.QuantConv2d(1, 8, 3, bias=False, weight_quant=Weight),
                         nn.BatchNorm2d(8), relu(not float_scale), nn.MaxPool2d(2),
                         nn.Flatten()]
                widths = (72, 24, 10)
            else:
                first = [nn.Flatten(), qnn.QuantLinear(64, 48, bias=False, weight_quant=Weight),
                         nn.BatchNorm1d(48), relu(not float_scale)]
                widths = (48, 32, 10)
            hidden = [qnn.QuantLinear(widths[0], widths[1], bias=False, weight_quant=Weight),
                      nn.BatchNorm1d(widths[1]), relu()] if hidden_dense else []
            k = widths[-2 if hidden_dense else 0]
            if ternary_out:
                from brevitas_examples.bnn_pynq.models.common import CommonWeightQuant

                out = qnn.QuantLinear(k, widths[2], bias=False, weight_quant=CommonWeightQuant,
                                      weight_bit_width=2)
                nn.init.uniform_(out.weight, -1.0, 1.0)
            else:
                out = qnn.QuantLinear(k, widths[2], bias=False, weight_quant=Weight)
            self.body = nn.Sequential(*first, *hidden, out, TensorNorm())

        def forward(self, x):
            x = x.reshape(x.shape[0], 1, 8, 8)
            return self.body(self.inq(x if in_bits > 1 else 2.0 * x - 1.0))

    return Net()


def brevitas_conv_out_net(pool=False, seed=0):
    """A Brevitas W1A1 CNN whose output layer reads the map: ``QuantConv2d(1, 8, 3)``,
    ``BatchNorm2d``, a binary activation, (``MaxPool2d(2)``,) then ``QuantLinear(., 10)`` with
    Brevitas' default float bias and ``TensorNorm``: no dense hidden layer to carry it."""
    import brevitas.nn as qnn
    from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
    from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm

    class Weight(SignedBinaryWeightPerTensorConst):
        scaling_const = 1.0

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(seed)
            layers = [qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
                      qnn.QuantConv2d(1, 8, 3, weight_quant=Weight), nn.BatchNorm2d(8),
                      qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst)]
            layers += [nn.MaxPool2d(2)] if pool else []
            layers += [nn.Flatten(), qnn.QuantLinear(8 * (9 if pool else 36), 10,
                                                     weight_quant=Weight), TensorNorm()]
            self.body = nn.Sequential(*layers)

        def forward(self, x):
            return self.body(2.0 * x.reshape(x.shape[0], 1, 8, 8) - 1.0)

    return Net()


def brevitas_bias_net(out_bias=False, seed=0, act_bits=1, bias_quant=None):
    """A Brevitas W1A1 CNN over 8x8 images with Brevitas' default float biases (``bias=True``)
    on its hidden layers: ``QuantConv2d(1, 8, 3)``, ``BatchNorm2d``, a binary activation, dense
    288-32 with ``BatchNorm1d`` and a binary activation, and an output ``QuantLinear(32, 10)``
    (scale 1; with a bias too for ``out_bias``) with ``TensorNorm``. ``act_bits`` > 1: the
    hidden activations are Brevitas' default signed ``QuantIdentity`` of that width with a
    power-of-two scale. ``bias_quant``: every layer's bias quantizer (``"int32"``: Brevitas'
    ``Int32Bias``, on the scale of the layer's products; ``None``: float biases)."""
    import brevitas.nn as qnn
    from brevitas.core.restrict_val import RestrictValueType
    from brevitas.quant import (
        Int32Bias,
        SignedBinaryActPerTensorConst,
        SignedBinaryWeightPerTensorConst,
    )
    from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm

    class Weight(SignedBinaryWeightPerTensorConst):
        scaling_const = 1.0

    # Int32Bias needs the scale of the layer's input: quant tensors between the layers
    quant = {"bias_quant": Int32Bias} if bias_quant == "int32" else {}
    ret = {"return_quant_tensor": True} if quant else {}

    def act():
        if act_bits > 1:
            return qnn.QuantIdentity(bit_width=act_bits, **ret,
                                     restrict_scaling_type=RestrictValueType.POWER_OF_TWO)
        return qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst, **ret)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(seed)
            self.body = nn.Sequential(
                qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst, **ret),
                qnn.QuantConv2d(1, 8, 3, weight_quant=Weight, **quant), nn.BatchNorm2d(8),
                act(), nn.Flatten(), qnn.QuantLinear(288, 32, weight_quant=Weight, **quant),
                nn.BatchNorm1d(32), act(),
                qnn.QuantLinear(32, 10, bias=out_bias, weight_quant=Weight, **quant),
                TensorNorm())

        def forward(self, x):
            return self.body(2.0 * x.reshape(x.shape[0], 1, 8, 8) - 1.0)

    return Net()
