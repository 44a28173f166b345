"""Convolutional network topologies: the binarized CNN that is exported, and its float twin.

A topology is a sequence of stages (:data:`CONV_PRESETS`, :mod:`bnnflow.model.stage_spec`):
``("conv", Cout, k)`` is a binary ``k x k`` convolution (no padding; ``("conv", Cout, kh, kw,
s)`` with stride ``s``) followed by BatchNorm and sign, ``("pool", k)`` a ``k x k`` max-pool
with stride ``k`` (``("pool", k, s)``: stride ``s``) on the binary activations (the OR of the
bits), ``("dense", N)`` a binary fully connected layer with BatchNorm and sign; the output
layer (one neuron per class, :class:`~bnnflow.model.layers.OutputNorm`) is added after the
last stage. The order conv, BatchNorm, sign, pool keeps the export exact for negative
BatchNorm scales (:mod:`bnnflow.model.export`). Inside the network maps are ``NCHW`` torch
tensors; the input and the flattening before the first dense stage are channels-last, as in
the artifact (:mod:`bnnflow.model.conventions`)."""

import math

import torch
from torch import nn

from .layers import (
    BinaryActivation,
    BinaryConv2d,
    BinaryLinear,
    LevelActivation,
    OutputNorm,
    TernaryConv2d,
    TernaryLinear,
    check_weight_kind,
)
from .stage_spec import check_stages, conv_geometry, is_positive_int, pool_geometry, stage_shapes

__all__ = ["CONV_PRESETS", "check_stages", "stage_shapes", "BinaryCNN", "FloatCNN"]

#: Stages of each convolutional preset. ``cnv`` is FINN's CNV (for 32x32x3 CIFAR-10 images);
#: ``cnv-mnist`` a smaller network for 28x28 MNIST that trains in minutes on two CPU cores.
CONV_PRESETS = {
    "cnv": (("conv", 64, 3), ("conv", 64, 3), ("pool", 2), ("conv", 128, 3), ("conv", 128, 3),
            ("pool", 2), ("conv", 256, 3), ("conv", 256, 3), ("dense", 512), ("dense", 512)),
    "cnv-mnist": (("conv", 16, 3), ("conv", 16, 3), ("pool", 2), ("conv", 32, 3),
                  ("conv", 32, 3), ("pool", 2), ("dense", 128)),
}


def _flat(shape):
    return shape if isinstance(shape, int) else math.prod(shape)


class BinaryCNN(nn.Module):
    """Binarized convolutional network: the network that the ``.bnn`` export reproduces.

    ``x`` holds ``+-1`` inputs ``(B, H * W * C)``, channels-last (or ``n``-bit inputs as the
    odd integers ``2a - L``, 8-bit pixels: the first conv's dots stay exact in float32). Conv
    stages compute
    ``sign(BatchNorm2d(conv(x, sign(W))))``, pool stages ``maxpool(x)`` (the OR of ``+-1``
    bits), dense stages ``sign(BatchNorm1d(x @ sign(W).T))`` with dropout in training; the
    output layer ``OutputNorm(x @ sign(W).T)``. The map is flattened channels-last before the
    first dense stage (or the output layer).

    Parameters
    ----------
    in_shape : (H, W, C)
    stages : sequence of stages (see :data:`CONV_PRESETS`)
    num_classes : int
    dropout : float
        Dropout on the binary activations of dense stages in training (0 disables it).
    init_scale : float
    weights : str
        ``"binary"`` or ``"ternary"``: the weights of every conv stage and hidden dense stage
        (:class:`~bnnflow.model.layers.TernaryConv2d`, :class:`~bnnflow.model.layers.
        TernaryLinear`); the output layer stays binary.
    quantizer : str
        The zero band of ternary weights (:func:`~bnnflow.model.layers.ternary_delta`) and the
        cuts of ``n``-bit activations.
    act_bits : int
        Bits of the hidden activations: 1 (sign) or ``n``
        (:class:`~bnnflow.model.layers.LevelActivation`, levels ``-L..L``); pools take the
        maximum level, which is the level of the maximum value.
    input_bits : int
        Bits of the input elements (1, or 8 for pixels given as ``2a - 255``): what a pad code
        of the first conv stands for.

    Attributes
    ----------
    blocks : nn.ModuleList
        One module per stage: :class:`BinaryConv2d`, ``nn.MaxPool2d`` or
        :class:`BinaryLinear`, in order, then the output :class:`BinaryLinear`.
    norms : nn.ModuleDict
        The BatchNorm of each conv and dense block, by block index (as a string).
    acts : nn.ModuleDict
        The activation of each conv and dense block, by block index (balanced cuts follow each
        block's own outputs).
    """

    def __init__(self, in_shape, stages, num_classes, dropout=0.0, init_scale=1.0,
                 weights="binary", quantizer="uniform", act_bits=1, input_bits=1):
        super().__init__()
        ternary = check_weight_kind(weights) == "ternary"
        if len(in_shape) != 3 or not all(is_positive_int(v) for v in in_shape):
            raise ValueError(f"in_shape must be (H, W, C) positive integers, not {in_shape!r}")
        if not is_positive_int(num_classes):
            raise ValueError(f"num_classes must be a positive integer, not {num_classes!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {dropout!r}")
        self.in_shape, self.stages = tuple(in_shape), check_stages(stages)
        self.weights = weights
        self.shapes = stage_shapes(in_shape, self.stages)
        blocks, norms, previous = [], {}, tuple(in_shape)
        for i, (stage, shape) in enumerate(zip(self.stages, self.shapes, strict=True)):
            if stage[0] == "conv":
                kernel, stride, pad, pad_value = conv_geometry(stage)
                # A pad code stands for the value 2a - L of the layer's input elements.
                in_bits = input_bits if i == 0 else act_bits
                geometry = {"stride": stride, "pad": pad,
                            "pad_fill": float(2 * pad_value - ((1 << in_bits) - 1))}
                blocks.append(TernaryConv2d(previous[2], stage[1], kernel, init_scale,
                                            rule=quantizer, **geometry) if ternary else
                              BinaryConv2d(previous[2], stage[1], kernel, init_scale,
                                           **geometry))
                norms[str(i)] = nn.BatchNorm2d(stage[1])
            elif stage[0] == "pool":
                blocks.append(nn.MaxPool2d(*pool_geometry(stage)))
            else:
                blocks.append(TernaryLinear(_flat(previous), stage[1], init_scale, rule=quantizer)
                              if ternary else BinaryLinear(_flat(previous), stage[1], init_scale))
                norms[str(i)] = nn.BatchNorm1d(stage[1])
            previous = shape
        blocks.append(BinaryLinear(_flat(previous), num_classes, init_scale))
        self.blocks, self.norms = nn.ModuleList(blocks), nn.ModuleDict(norms)
        self.out_norm = OutputNorm()
        self.act_bits = act_bits
        self.acts = nn.ModuleDict({key: BinaryActivation() if act_bits == 1 else
                                   LevelActivation(act_bits, quantizer) for key in norms})
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x):
        return self._run(x)[0]

    @torch.no_grad()
    def trace(self, x):
        """Run in the current mode without dropout and return every intermediate value.

        Returns
        -------
        dict with ``"dots"`` (integer-valued pre-activations of every conv and dense block,
        output included, flattened channels-last), ``"activations"`` (``+-1`` outputs, or the
        values ``2a - L`` of ``n``-bit levels, of every hidden block, pools included,
        flattened channels-last) and ``"scores"``.
        """
        scores, dots, activations = self._run(x, trace=True)
        return {"dots": dots, "activations": activations, "scores": scores}

    def _run(self, x, trace=False):
        h, w, c = self.in_shape
        x = x.reshape(len(x), h, w, c).permute(0, 3, 1, 2)
        dots, activations = [], []
        for i, block in enumerate(self.blocks):
            if isinstance(block, BinaryLinear) and x.dim() == 4:
                x = _channels_last(x)
            x = block(x)
            if trace and not isinstance(block, nn.MaxPool2d):
                dots.append(_channels_last(x) if x.dim() == 4 else x)
            if str(i) in self.norms:
                x = self.acts[str(i)](self.norms[str(i)](x))
                if x.dim() == 2 and not trace:
                    x = self.dropout(x)
            if trace and i < len(self.blocks) - 1:
                activations.append(_channels_last(x) if x.dim() == 4 else x)
        return self.out_norm(x), dots, activations


class FloatCNN(nn.Module):
    """Full-precision twin of :class:`BinaryCNN` (``--float-baseline``).

    Real pixels scaled to ``[0, 1]`` (``(B, H * W * C)`` channels-last) go through ``Conv2d ->
    BatchNorm2d -> ReLU`` per conv stage, ``MaxPool2d`` per pool stage, ``Linear ->
    BatchNorm1d -> ReLU`` (and dropout) per dense stage, and a ``Linear`` output with bias.
    """

    def __init__(self, in_shape, stages, num_classes, dropout=0.0):
        super().__init__()
        self.in_shape, stages = tuple(in_shape), check_stages(stages)
        shapes = stage_shapes(in_shape, stages)
        layers, previous = [], tuple(in_shape)
        for stage, shape in zip(stages, shapes, strict=True):
            if stage[0] == "conv":
                kernel, stride, pad, _ = conv_geometry(stage)
                layers += [nn.Conv2d(previous[2], stage[1], kernel, stride=stride, padding=pad,
                                     bias=False),
                           nn.BatchNorm2d(stage[1]), nn.ReLU()]
            elif stage[0] == "pool":
                layers.append(nn.MaxPool2d(*pool_geometry(stage)))
            else:
                if not isinstance(previous, int):
                    layers.append(_ChannelsLastFlatten())
                layers += [nn.Linear(_flat(previous), stage[1], bias=False),
                           nn.BatchNorm1d(stage[1]), nn.ReLU()]
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
            previous = shape
        if not isinstance(previous, int):
            layers.append(_ChannelsLastFlatten())
        layers.append(nn.Linear(_flat(previous), num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        h, w, c = self.in_shape
        return self.net(x.reshape(len(x), h, w, c).permute(0, 3, 1, 2))


def _channels_last(x):
    """``NCHW`` maps flattened channels-last: ``(B, H * W * C)``."""
    return x.permute(0, 2, 3, 1).reshape(len(x), -1)


class _ChannelsLastFlatten(nn.Module):
    def forward(self, x):
        return _channels_last(x)
