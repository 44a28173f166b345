"""Network topologies: the binarized MLP that is exported, and its full-precision baseline.

Presets follow FINN's fully connected BNNs: ``tfc`` (3 hidden layers of 64 neurons), ``sfc``
(3 x 256) and ``lfc`` (3 x 1024). The input width is the number of pixels of the data set and
the output layer has one neuron per class.
"""

import torch
from torch import nn

from .layers import (
    WEIGHT_KINDS,
    BinaryActivation,
    BinaryLinear,
    LevelActivation,
    OutputNorm,
    TernaryLinear,
    check_weight_kind,
)

__all__ = ["PRESETS", "WEIGHT_KINDS", "hidden_for", "BinaryMLP", "FloatMLP"]

#: Hidden layer widths of each preset.
PRESETS = {"tfc": (64, 64, 64), "sfc": (256, 256, 256), "lfc": (1024, 1024, 1024)}


def hidden_for(preset):
    """Hidden widths of a preset name; ``ValueError`` for an unknown one."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, not {preset!r}")
    return PRESETS[preset]


def _check_sizes(in_features, hidden, num_classes):
    hidden = tuple(hidden)
    for label, value in (("in_features", in_features), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{label} must be a positive integer, not {value!r}")
    if not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden):
        raise ValueError(f"hidden must be a sequence of positive integers, not {hidden!r}")
    return hidden


class BinaryMLP(nn.Module):
    """Binarized multi-layer perceptron: the network that the ``.bnn`` export reproduces.

    Forward pass (``x`` holds ``+-1`` input values, shape ``(B, K0)``)::

        for each hidden layer i:   z = x @ sign(W_i).T;  y = BatchNorm_i(z);  x = sign(y)
        output layer:              z = x @ sign(W_out).T;  scores = OutputNorm(z)

    with ``sign(0) = +1`` and straight-through gradients (:mod:`bnnflow.model.layers`).
    Every binary linear layer is followed by a normalization: ``nn.BatchNorm1d`` for hidden
    layers, :class:`~bnnflow.model.layers.OutputNorm` (argmax-preserving) for the output.

    Parameters
    ----------
    in_features : int
        Number of input bits ``K0``.
    hidden : sequence of int
        Widths of the hidden layers (may be empty).
    num_classes : int
        Neurons of the output layer.
    dropout : float
        Dropout probability applied to the binary activations of hidden layers in training
        (0 disables it).
    init_scale : float
        Scale of the Glorot-uniform initialization of the latent weights.
    weights : str
        ``"binary"`` or ``"ternary"`` (:class:`~bnnflow.model.layers.TernaryLinear` hidden
        layers; the output layer stays binary).
    act_bits : int
        Bits of the hidden activations: 1 (sign) or ``n`` (:class:`~bnnflow.model.layers.
        LevelActivation`, levels ``-L..L``).
    quantizer : str
        ``"uniform"`` or ``"balanced"``: the cuts of ``n``-bit activations and the zero band of
        ternary weights (:func:`~bnnflow.model.layers.ternary_delta`).

    Raises
    ------
    ValueError
        If a size is not a positive integer, ``dropout`` is not in ``[0, 1)`` or ``weights``
        is not one of :data:`WEIGHT_KINDS`.
    """

    def __init__(self, in_features, hidden, num_classes, dropout=0.0, init_scale=1.0,
                 weights="binary", act_bits=1, quantizer="uniform"):
        super().__init__()
        hidden = _check_sizes(in_features, hidden, num_classes)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {dropout!r}")
        check_weight_kind(weights)
        widths = [in_features, *hidden, num_classes]
        self.widths = widths
        self.weights = weights
        self.act_bits = act_bits
        def layer(i, k, n):
            if weights == "ternary" and i < len(hidden):
                return TernaryLinear(k, n, init_scale=init_scale, rule=quantizer)
            return BinaryLinear(k, n, init_scale=init_scale)

        self.fcs = nn.ModuleList(layer(i, k, n) for i, (k, n) in
                                 enumerate(zip(widths[:-1], widths[1:], strict=True)))
        self.bns = nn.ModuleList(nn.BatchNorm1d(n) for n in hidden)
        self.out_norm = OutputNorm()
        # One activation per hidden layer: balanced cuts follow each layer's own outputs.
        self.acts = nn.ModuleList(
            BinaryActivation() if act_bits == 1 else LevelActivation(act_bits, quantizer)
            for _ in hidden)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x):
        for fc, bn, act in zip(self.fcs[:-1], self.bns, self.acts, strict=True):
            x = self.dropout(act(bn(fc(x))))
        return self.out_norm(self.fcs[-1](x))

    @torch.no_grad()
    def trace(self, x):
        """Run in the current mode without dropout and return every intermediate value.

        Returns
        -------
        dict with ``"dots"`` (integer-valued dot products of every layer, output included),
        ``"activations"`` (``+-1`` outputs of every hidden layer) and ``"scores"``.
        """
        dots, activations = [], []
        for fc, bn, act in zip(self.fcs[:-1], self.bns, self.acts, strict=True):
            z = fc(x)
            dots.append(z)
            x = act(bn(z))
            activations.append(x)
        z = self.fcs[-1](x)
        dots.append(z)
        return {"dots": dots, "activations": activations, "scores": self.out_norm(z)}


class FloatMLP(nn.Module):
    """Full-precision baseline with the topology of :class:`BinaryMLP`.

    ``x`` (real pixels scaled to ``[0, 1]``) goes through ``Linear -> BatchNorm1d -> ReLU`` per
    hidden layer, then a ``Linear`` output layer with bias. Same parameters as
    :class:`BinaryMLP` except ``init_scale``.
    """

    def __init__(self, in_features, hidden, num_classes, dropout=0.0):
        super().__init__()
        hidden = _check_sizes(in_features, hidden, num_classes)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {dropout!r}")
        layers = []
        k = in_features
        for n in hidden:
            layers += [nn.Linear(k, n, bias=False), nn.BatchNorm1d(n), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            k = n
        layers.append(nn.Linear(k, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
