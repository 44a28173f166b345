"""Binarized layers for training: sign with a straight-through estimator, latent weights.

The maths follows BinaryNet (Courbariaux et al., 2016) and larq's ``SteSign``:

* **Forward.** ``sign(x) = +1 if x >= 0 else -1``; in particular ``sign(0) = +1``, the rule of
  :mod:`bnnflow.model.conventions`.
* **Backward (straight-through estimator).** ``d sign(x) / dx`` is taken as ``1`` where
  ``|x| <= 1`` (the boundary included) and ``0`` elsewhere, i.e. the gradient of
  ``hardtanh(x)``.
* **Latent weights.** A :class:`BinaryLinear` keeps real-valued weights ``W``, uses
  ``sign(W)`` in the forward pass and passes gradients to ``W`` through the estimator above;
  after every optimizer step :meth:`BinaryLinear.clip_` clamps ``W`` to ``[-1, 1]`` so that
  the estimator keeps passing gradients.

This module imports torch; only training code uses it.
"""

import math

import torch
from torch import nn

__all__ = ["WEIGHT_KINDS", "check_weight_kind", "SignSTE", "sign_ste", "BinaryActivation",
           "LevelActivation", "BinaryLinear", "TernaryLinear", "ternary_ste", "ternary_delta",
           "TERNARY_RULES", "BinaryConv2d", "TernaryConv2d", "OutputNorm", "clip_latent"]

#: Weights of the hidden layers: binary (+-1) or ternary (-1, 0, +1; the output layer stays
#: binary, as :mod:`bnnflow.model.conventions` says).
WEIGHT_KINDS = ("binary", "ternary")


def check_weight_kind(weights):
    """``weights`` if it is one of :data:`WEIGHT_KINDS`, else ``ValueError``."""
    if weights not in WEIGHT_KINDS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHT_KINDS)}, not {weights!r}")
    return weights


class SignSTE(torch.autograd.Function):
    """``sign`` with the straight-through estimator.

    Forward: ``y = +1`` where ``x >= 0`` (so ``sign(0) = +1``), ``y = -1`` where ``x < 0``.
    Backward: ``dL/dx = dL/dy`` where ``|x| <= 1``, ``0`` where ``|x| > 1``.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * (x.abs() <= 1).to(grad_output.dtype)


def sign_ste(x):
    """Apply :class:`SignSTE`: ``+1`` where ``x >= 0`` else ``-1``; gradient passed on
    ``|x| <= 1``."""
    return SignSTE.apply(x)


class BinaryActivation(nn.Module):
    """Binary activation ``x -> sign(x)`` with the straight-through estimator.

    Forward: ``+1`` where ``x >= 0`` (``sign(0) = +1``), ``-1`` elsewhere. Backward: the
    incoming gradient where ``|x| <= 1``, zero elsewhere.
    """

    def forward(self, x):
        return sign_ste(x)

    @staticmethod
    def cuts():
        """``[0.0]``: the one cut of the sign (as :meth:`LevelActivation.cuts`)."""
        return [0.0]


class LevelActivation(nn.Module):
    """``n``-bit activation: ``y -> 2a - L`` with ``a = sum_{k=1..L} [y >= c_k]``,
    ``L = 2**n - 1``: the levels -L, -L+2, ..., L of :mod:`bnnflow.model.conventions`
    (integers, so the next layer's dot products stay exact).

    Cuts ``c_k``: ``"uniform"`` puts them halfway between the levels scaled to ``[-1, 1]``,
    ``c_k = (2k - 1 - L) / L``. ``"balanced"`` (Zhou et al., "Balanced Quantization", 2017)
    puts them at the ``k / (L + 1)`` quantiles of the layer's BatchNorm outputs, so that each
    level holds about the same share of values: in training each batch's quantiles (the
    recursive median split of the paper, for ``2**n`` levels) update running cuts with
    momentum 0.1, and the running cuts are what the forward pass, and so the export, use.
    ``n = 1`` uniform is :class:`BinaryActivation` (``[y >= 0]``). The forward pass is these
    literal comparisons (:meth:`cuts`), so the export's integer thresholds reproduce it exactly.
    Backward: the incoming gradient where ``|y| <= 1``, zero elsewhere (straight-through).
    """

    def __init__(self, bits, quantizer="uniform"):
        super().__init__()
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
            raise ValueError(f"bits must be an integer in 1..8, not {bits!r}")
        if quantizer not in ("uniform", "balanced"):
            raise ValueError(f"quantizer must be uniform or balanced, not {quantizer!r}")
        self.bits, self.quantizer = bits, quantizer
        self.top = (1 << bits) - 1
        uniform = [(2 * k - 1 - self.top) / self.top for k in range(1, self.top + 1)]
        self.register_buffer("running_cuts", torch.tensor(uniform, dtype=torch.float32))

    def cuts(self):
        """``[c_1, ..., c_L]`` (Python floats of the float32 cuts): level ``k`` is reached
        where ``y >= c_k``."""
        return [float(c) for c in self.running_cuts]

    @torch.no_grad()
    def _update(self, y):
        q = torch.arange(1, self.top + 1, dtype=torch.float32) / (self.top + 1)
        batch = torch.quantile(y.detach().reshape(-1).float(), q)
        self.running_cuts.mul_(0.9).add_(0.1 * batch)

    def forward(self, y):
        if self.quantizer == "balanced" and self.training:
            self._update(y)
        with torch.no_grad():
            a = torch.zeros_like(y)
            for c in self.running_cuts:
                a += (y >= c).to(y.dtype)
            v = 2 * a - self.top
            gate = (y.abs() <= 1).to(y.dtype)
        return v + (y - y.detach()) * gate

    def extra_repr(self):
        return f"bits={self.bits}, quantizer={self.quantizer}"


class BinaryLinear(nn.Module):
    """Fully connected layer with binary weights and real-valued latent weights.

    Forward: ``z = x @ sign(W).T`` with ``sign(0) = +1`` (no bias). For ``+-1`` inputs ``z`` is
    the integer dot product ``2 * popcount(XNOR(x, w)) - K``, exact in float32 for
    ``K < 2**24``. Backward: the gradient with respect to ``sign(W)`` reaches ``W`` where
    ``|W| <= 1`` and is zero elsewhere (straight-through estimator). Call :meth:`clip_` after
    each optimizer step to keep ``W`` in ``[-1, 1]``.

    Parameters
    ----------
    in_features : int
        ``K``, the number of inputs.
    out_features : int
        ``N``, the number of neurons.
    init_scale : float
        Latent weights start uniform in ``[-a, a]`` with
        ``a = init_scale * sqrt(6 / (K + N))`` (Glorot), clipped to ``[-1, 1]``.

    Raises
    ------
    ValueError
        If a size is not a positive integer or ``init_scale`` is not positive.
    """

    def __init__(self, in_features, out_features, init_scale=1.0):
        super().__init__()
        for label, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{label} must be a positive integer, not {value!r}")
        if not init_scale > 0:
            raise ValueError(f"init_scale must be positive, not {init_scale!r}")
        self.in_features = in_features
        self.out_features = out_features
        bound = min(1.0, init_scale * math.sqrt(6.0 / (in_features + out_features)))
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))

    def binary_weight(self):
        """``sign(W)`` as a ``+-1`` tensor (no gradient)."""
        with torch.no_grad():
            return torch.where(self.weight >= 0, 1.0, -1.0)

    def forward(self, x):
        return nn.functional.linear(x, sign_ste(self.weight))

    @torch.no_grad()
    def clip_(self):
        """Clamp the latent weights to ``[-1, 1]`` in place."""
        self.weight.clamp_(-1.0, 1.0)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"


#: Rules for the zero band of ternary weights (:class:`TernaryLinear`).
TERNARY_RULES = ("uniform", "balanced")


def ternary_delta(w, ratio=0.7, rule="uniform"):
    """Half-width of each neuron's zero band, ``(N, 1)`` for latent weights ``(N, K)``.

    ``"uniform"``: ``ratio * mean |w|`` of the row (Li & Liu's ternary weight networks).
    ``"balanced"`` (Zhou et al., 2017, applied to the three weight levels): the ``1/3``
    quantile of the row's ``|w|``, so that -1, 0 and +1 each hold about a third of the
    neuron's weights; ``ratio`` is not used.
    """
    if rule == "balanced":
        return w.abs().quantile(1 / 3, dim=1, keepdim=True)
    return ratio * w.abs().mean(dim=1, keepdim=True)


def _ternary_params(ratio, rule):
    """``(ratio, rule)`` of a ternary layer, checked."""
    if not ratio > 0:
        raise ValueError(f"ratio must be positive, not {ratio!r}")
    if rule not in TERNARY_RULES:
        raise ValueError(f"rule must be one of {', '.join(TERNARY_RULES)}, not {rule!r}")
    return float(ratio), rule


def ternary_ste(w, ratio, rule="uniform"):
    """Weights in ``{-1, 0, +1}``: 0 where ``|w| <`` :func:`ternary_delta` of the row (the
    neuron), else ``sign(w)``; the gradient passes straight through where ``|w| <= 1``."""
    with torch.no_grad():
        delta = ternary_delta(w, ratio, rule)
        q = torch.where(w.abs() >= delta, torch.where(w >= 0, 1.0, -1.0), 0.0).to(w.dtype)
        gate = (w.abs() <= 1).to(w.dtype)
    # Value q exactly (w - w.detach() is 0); gradient to w where |w| <= 1, zeros included, so
    # that a weight in the zero band can leave it.
    return q + (w - w.detach()) * gate


class TernaryLinear(BinaryLinear):
    """Fully connected layer with ternary weights and real-valued latent weights.

    Forward: ``z = x @ t(W).T`` with ``t(w) = 0`` where ``|w|`` is below the neuron's zero band
    (:func:`ternary_delta`: by default ``ratio * mean_k |W[n, k]|``, the threshold of Li &
    Liu's ternary weight networks) and ``sign(w)`` elsewhere. For ``+-1`` inputs ``z = 2p - m``,
    the ternary convention of :mod:`bnnflow.model.conventions` (``p`` the live popcount, ``m``
    the live weights), exact in float32. Backward: as :class:`BinaryLinear` (straight-through
    where ``|W| <= 1``).

    Parameters
    ----------
    in_features, out_features, init_scale
        As :class:`BinaryLinear`.
    ratio : float
        The zero band's half-width in units of the neuron's mean ``|W|`` (default 0.7).
    rule : str
        ``"uniform"`` (``ratio``) or ``"balanced"`` (a third of the weights zero), one of
        :data:`TERNARY_RULES`.
    """

    def __init__(self, in_features, out_features, init_scale=1.0, ratio=0.7, rule="uniform"):
        super().__init__(in_features, out_features, init_scale)
        self.ratio, self.rule = _ternary_params(ratio, rule)

    def ternary_weight(self):
        """``t(W)`` as a tensor of -1, 0, +1 (no gradient): what the forward pass uses."""
        with torch.no_grad():
            return ternary_ste(self.weight, self.ratio, self.rule)

    def forward(self, x):
        return nn.functional.linear(x, ternary_ste(self.weight, self.ratio, self.rule))

    def extra_repr(self):
        return f"{super().extra_repr()}, rule={self.rule}"


class BinaryConv2d(nn.Module):
    """2-D convolution with binary weights and real-valued latent weights (no padding, no
    bias).

    Forward: ``z = conv2d(x, sign(W), stride=s)`` on ``NCHW`` tensors with ``sign(0) = +1``;
    for ``+-1`` inputs every output is the integer dot product of a ``kh * kw * Cin`` window,
    exact in float32. Backward and :meth:`clip_` as :class:`BinaryLinear`. The latent weight
    has torch's shape ``(Cout, Cin, kh, kw)``; the export flattens it in ``(kh, kw, Cin)``
    order (:meth:`window_weight`), the window order of :mod:`bnnflow.model.conventions`.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
        ``k`` of a square ``k x k`` kernel, or ``(kh, kw)``.
    init_scale : float
        Glorot-uniform bound scale, with fan-in ``kh * kw * Cin`` and fan-out
        ``kh * kw * Cout``.
    stride : int
        ``s``, the step between windows along both axes (:mod:`bnnflow.model.conventions`).
    pad : int
        ``p`` rows and columns of border on every side (0: none), below the kernel.
    pad_fill : float
        The value of every padded input (the value ``2a - L`` of the export's pad code ``a``).

    Attributes
    ----------
    kernel : (kh, kw)
    stride, pad : int
    pad_fill : float

    Raises
    ------
    ValueError
        If a size is not a positive integer or ``init_scale`` is not positive.
    """

    def __init__(self, in_channels, out_channels, kernel_size, init_scale=1.0, stride=1, pad=0,
                 pad_fill=-1.0):
        super().__init__()
        kernel = tuple(kernel_size) if isinstance(kernel_size, tuple | list) else \
            (kernel_size, kernel_size)
        for label, value in (("in_channels", in_channels), ("out_channels", out_channels),
                             *(("kernel_size", v) for v in kernel), ("stride", stride)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{label} must be a positive integer, not {value!r}")
        if len(kernel) != 2:
            raise ValueError(f"kernel_size must be k or (kh, kw), not {kernel_size!r}")
        if not init_scale > 0:
            raise ValueError(f"init_scale must be positive, not {init_scale!r}")
        if isinstance(pad, bool) or not isinstance(pad, int) or not 0 <= pad < min(kernel):
            raise ValueError(f"pad must be an integer in 0..{min(kernel) - 1} (less than the "
                             f"kernel), not {pad!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel, self.stride, self.pad, self.pad_fill = kernel, stride, pad, float(pad_fill)
        area = kernel[0] * kernel[1]
        bound = min(1.0, init_scale * math.sqrt(6.0 / (area * (in_channels + out_channels))))
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *kernel)
                                   .uniform_(-bound, bound))

    def window_weight(self):
        """Latent weights ``(Cout, kh * kw * Cin)`` in ``(kh, kw, Cin)`` window order."""
        return self.weight.detach().permute(0, 2, 3, 1).reshape(self.out_channels, -1)

    def padded(self, x):
        """``x`` bordered by ``pad`` rows and columns of ``pad_fill`` (itself without
        padding)."""
        if not self.pad:
            return x
        return nn.functional.pad(x, (self.pad,) * 4, value=self.pad_fill)

    def forward(self, x):
        return nn.functional.conv2d(self.padded(x), sign_ste(self.weight), stride=self.stride)

    @torch.no_grad()
    def clip_(self):
        """Clamp the latent weights to ``[-1, 1]`` in place."""
        self.weight.clamp_(-1.0, 1.0)

    def extra_repr(self):
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"kernel={self.kernel[0]}x{self.kernel[1]}, stride={self.stride}"
                + (f", pad={self.pad} of {self.pad_fill:g}" if self.pad else ""))


class TernaryConv2d(BinaryConv2d):
    """2-D convolution with ternary weights and real-valued latent weights.

    Forward: ``z = conv2d(x, t(W))`` with :func:`ternary_ste` over each output channel's
    flattened ``(Cin, kh, kw)`` latent weights: the zero band of :class:`TernaryLinear`, one
    band per output channel (a channel is a neuron). For ``+-1`` inputs ``z = 2p - m`` at each
    output pixel, exact in float32. Backward and :meth:`clip_` as :class:`BinaryConv2d`.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, init_scale, stride, pad, pad_fill
        As :class:`BinaryConv2d`.
    ratio, rule
        As :class:`TernaryLinear`.
    """

    def __init__(self, in_channels, out_channels, kernel_size, init_scale=1.0, ratio=0.7,
                 rule="uniform", stride=1, pad=0, pad_fill=-1.0):
        super().__init__(in_channels, out_channels, kernel_size, init_scale, stride, pad,
                         pad_fill)
        self.ratio, self.rule = _ternary_params(ratio, rule)

    def _ternary(self):
        w = self.weight
        return ternary_ste(w.reshape(self.out_channels, -1), self.ratio, self.rule).reshape(
            w.shape)

    def ternary_window_weight(self):
        """``t(W)`` ``(Cout, kh * kw * Cin)`` of -1, 0, +1 in window order (no gradient): what
        the forward pass uses, as the export stores it."""
        with torch.no_grad():
            t = self._ternary()
        return t.permute(0, 2, 3, 1).reshape(self.out_channels, -1)

    def forward(self, x):
        return nn.functional.conv2d(self.padded(x), self._ternary(), stride=self.stride)

    def extra_repr(self):
        return f"{super().extra_repr()}, rule={self.rule}"


class OutputNorm(nn.Module):
    """Normalization of the output layer that never changes the class (FINN's TensorNorm).

    ``y = (z - mean) * (exp(log_scale) / sqrt(var + eps))``: one mean and one variance over the
    whole batch tensor (all samples and all classes), one positive learned scale, and no bias
    per class. In training mode the batch statistics are used and running averages updated; in
    eval mode the running averages are used. As the same positive factor and the same offset
    apply to every class, ``argmax(y) = argmax(z)`` = the argmax over the output layer's
    popcounts, so the exported last layer keeps raw popcounts and stays exact (the export
    checks that the float32 map is strictly increasing on every reachable dot product).

    Parameters
    ----------
    momentum : float
        Running-average momentum, as in ``nn.BatchNorm1d``.
    eps : float
        Added to the variance.
    """

    def __init__(self, momentum=0.1, eps=1e-5):
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.log_scale = nn.Parameter(torch.zeros(()))
        self.register_buffer("running_mean", torch.zeros(()))
        self.register_buffer("running_var", torch.ones(()))

    def scale(self):
        """The positive scale ``exp(log_scale)``."""
        return self.log_scale.exp()

    def forward(self, z):
        if self.training:
            mean = z.mean()
            var = z.var(unbiased=False)
            with torch.no_grad():
                n = z.numel()
                unbiased = var * n / max(n - 1, 1)
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(unbiased.detach(), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        return (z - mean) * (self.scale() / torch.sqrt(var + self.eps))


def clip_latent(module):
    """Call ``clip_`` on every binary layer (:class:`BinaryLinear`, :class:`BinaryConv2d`)
    inside ``module``."""
    for m in module.modules():
        if isinstance(m, BinaryLinear | BinaryConv2d):
            m.clip_()
