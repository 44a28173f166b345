"""The ``binary_conv2d`` layer kind: a binary convolution over a channels-last map.

An ``H x W x Cin`` map, a ``kh x kw`` kernel, stride ``s`` (1 unless given) and padding ``p`` (0
unless given; the border holds the input code ``pad_value``) give an ``((H + 2p - kh) // s + 1) x
((W + 2p - kw) // s + 1) x Cout`` map. Each output pixel is ``Cout`` binary neurons over the window
of ``kh * kw * Cin`` input bits in ``(kh, kw, Cin)`` order
(:func:`bnnflow.model.conventions.windows`); weights are ``(Cout, kh * kw * Cin)`` bits in the same
order and each neuron compares its XNOR popcount with its sorted integer thresholds, as a dense
neuron does. A conv layer is always a hidden layer (the output layer is dense). The members are
those of :class:`bnnflow.model.kinds.LayerKind`; the matrix that a folding folds is ``Cout`` neurons
by ``kh * kw * Cin`` inputs, applied once per output pixel.
"""

from dataclasses import dataclass

import numpy as np

from . import conventions
from .dense import read_thresholds, read_weights, threshold_facts
from .kinds import hidden_map_fields, manifest_field, matrix_cycles, shape_field

__all__ = ["Conv2dLayer", "conv_out_shape", "check_in_bits", "map_fields"]


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def conv_out_shape(in_shape, kernel, channels, stride=1, pad=0):
    """``((H + 2p - kh) // s + 1, (W + 2p - kw) // s + 1, channels)``; ``ValueError`` if the
    kernel does not fit, the stride is not a positive integer or the padding is not in
    ``0 .. min(kh, kw) - 1``."""
    h, w, _ = in_shape
    kh, kw = kernel
    if not _is_int(stride) or stride < 1:
        raise ValueError(f"conv stride must be a positive integer, not {stride!r}")
    if not _is_int(pad) or not 0 <= pad < min(kh, kw):
        raise ValueError(f"conv pad must be an integer in 0..{min(kh, kw) - 1} (less than the "
                         f"{kh}x{kw} kernel), not {pad!r}")
    if kh > h + 2 * pad or kw > w + 2 * pad:
        padded = f" padded by {pad}" if pad else ""
        raise ValueError(f"kernel {kh}x{kw} is larger than the {h}x{w} input map{padded}")
    return ((h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1, channels)


@dataclass(frozen=True)
class Conv2dLayer:
    """A binary convolution layer (kind ``binary_conv2d``).

    Parameters
    ----------
    name : str
    in_shape : (H, W, Cin)
        The input map, channels-last.
    kernel : (kh, kw)
    weights : array of 0/1, shape ``(Cout, kh * kw * Cin)``
        Bit 1 is weight +1; each row in ``(kh, kw, Cin)`` window order.
    thresholds : int array ``(Cout, T)``
        Sorted popcount thresholds per output channel (``T = 1`` for binary activations).
    in_bits : int
        Bits per input element: 1, or ``n`` for ``n``-bit inputs (8-bit pixels into the first
        layer): each window element is then a level ``a`` in ``0..L`` and the popcount
        :func:`~bnnflow.model.conventions.popcount_levels`, thresholds in ``[0, L*K + 1]``,
        as for a dense layer.
    stride : int
        ``s``, the step between windows along both axes (1: every window).
    pad : int
        ``p``, rows and columns of border on every side (0: none; below the kernel).
    pad_value : int
        The input code of every padded element, ``0..L`` (:mod:`bnnflow.model.conventions`).

    Raises
    ------
    ValueError
        Shapes that do not agree (kernel larger than the map, weights not
        ``(Cout, kh * kw * Cin)``, thresholds not one row per output channel), ``in_bits``
        not in 1..8, a stride that is not a positive integer, a pad not below the kernel or
        a pad value that is not an input code.
    """

    name: str
    in_shape: tuple
    kernel: tuple
    weights: np.ndarray
    thresholds: np.ndarray
    in_bits: int = 1
    stride: int = 1
    pad: int = 0
    pad_value: int = 0

    kind = "binary_conv2d"
    weight_bits = 1
    is_output = False

    def __post_init__(self):
        object.__setattr__(self, "in_shape", tuple(int(v) for v in self.in_shape))
        object.__setattr__(self, "kernel", tuple(int(v) for v in self.kernel))
        if len(self.in_shape) != 3 or len(self.kernel) != 2:
            raise ValueError(f"{self.name}: in_shape must be (H, W, Cin) and kernel (kh, kw), "
                             f"not {self.in_shape} and {self.kernel}")
        kh, kw = self.kernel
        fan_in = kh * kw * self.in_shape[2]
        if self.weights.ndim != 2 or self.weights.shape[1] != fan_in:
            raise ValueError(f"{self.name}: weights must be (Cout, {fan_in}) for a {kh}x{kw} "
                             f"kernel over {self.in_shape[2]} channels, not "
                             f"{tuple(self.weights.shape)}")
        if self.thresholds is None or self.thresholds.shape[0] != self.weights.shape[0]:
            raise ValueError(f"{self.name}: a conv layer needs thresholds, one row per output "
                             f"channel ({self.weights.shape[0]})")
        try:
            conv_out_shape(self.in_shape, self.kernel, self.weights.shape[0], self.stride,
                           self.pad)
        except ValueError as e:
            raise ValueError(f"{self.name}: {e}") from None
        check_in_bits(self.in_bits, self.name)
        top = (1 << self.in_bits) - 1
        if not _is_int(self.pad_value) or not 0 <= self.pad_value <= top:
            raise ValueError(f"{self.name}: pad_value must be an input code in 0..{top}, not "
                             f"{self.pad_value!r}")

    @property
    def max_count(self):
        """The largest popcount, ``L * K`` (``K`` for binary inputs)."""
        return ((1 << self.in_bits) - 1) * self.fan_in

    @property
    def out_shape(self):
        return conv_out_shape(self.in_shape, self.kernel, self.neurons, self.stride, self.pad)

    @property
    def padded_shape(self):
        """``(H + 2p, W + 2p, Cin)``: the map the windows are read from."""
        h, w, c = self.in_shape
        return (h + 2 * self.pad, w + 2 * self.pad, c)

    @property
    def geometry(self):
        """The keyword arguments of :func:`bnnflow.model.conventions.windows` beyond the shape
        and kernel: ``stride``, ``pad``, ``pad_value``."""
        return {"stride": self.stride, "pad": self.pad, "pad_value": self.pad_value}

    @property
    def in_width(self):
        return int(np.prod(self.in_shape))

    @property
    def out_width(self):
        return int(np.prod(self.out_shape))

    @property
    def neurons(self):
        return int(self.weights.shape[0])

    @property
    def fan_in(self):
        return int(self.weights.shape[1])

    @property
    def output_pixels(self):
        return self.out_shape[0] * self.out_shape[1]

    @property
    def synapses(self):
        """Stored weights (``Cout * kh * kw * Cin``; every output pixel shares them)."""
        return self.neurons * self.fan_in

    @property
    def activation_bits(self):
        return int(self.thresholds.shape[1] + 1).bit_length() - 1

    def forward(self, x):
        """``(activations, popcounts)``, both ``(B, Ho * Wo * Cout)`` channels-last."""
        win = conventions.windows(x, self.in_shape, self.kernel, **self.geometry)
        b, p, k = win.shape
        counts = self._counts(win.reshape(b * p, k))
        bits = conventions.fire(counts, self.thresholds)
        return bits.reshape(b, -1), counts.reshape(b, -1)

    def _counts(self, rows):
        """Popcounts of window rows ``(R, K)`` against every output channel."""
        if self.in_bits == 1:
            return conventions.popcount_xnor(rows, self.weights)
        return conventions.popcount_levels(rows, self.weights, self.in_bits)

    def cycles(self, fold):
        """``Ho * Wo * ceil(Cout / PE) * ceil(kh * kw * Cin / SIMD)``, and at least ``(H + 2p)
        (W + 2p)``: the padded map streams in one pixel a cycle, so a layer whose windows take
        one cycle each is bound by its input (the hardware's figure,
        :class:`bnnflow.hw.conv.ConvUnit`)."""
        return max(self.padded_shape[0] * self.padded_shape[1],
                   matrix_cycles(self.fan_in, self.neurons, fold, pixels=self.output_pixels))

    @staticmethod
    def preactivation(x, weights, in_shape, kernel, stride=1, pad=0, pad_fill=0.0):
        """Real pre-activations ``(B, Ho * Wo * Cout)`` of maps ``x`` ``(B, H * W * Cin)``
        against weights ``(Cout, kh * kw * Cin)``; padded positions hold the real value
        ``pad_fill`` (the value of the pad code, ``2 pad_value - L``)."""
        win = conventions.windows(x, in_shape, kernel, stride, pad, pad_fill)
        return (win @ weights.T).reshape(len(x), -1)

    def describe(self):
        return {"in_shape": list(self.in_shape), "out_shape": list(self.out_shape),
                "kernel": list(self.kernel), **self._shape_facts(),
                **threshold_facts(self.thresholds, self.max_count)}

    def _shape_facts(self):
        """``in_bits`` and ``stride`` where they are not 1, ``pad`` and ``pad_value`` where
        there is padding."""
        return {**({"in_bits": self.in_bits} if self.in_bits != 1 else {}),
                **({"stride": self.stride} if self.stride != 1 else {}),
                **({"pad": self.pad, "pad_value": self.pad_value} if self.pad else {})}

    def to_manifest(self):
        entry = {
            "name": self.name, "kind": self.kind, "in_width": self.in_width,
            "out_width": self.out_width, "in_shape": list(self.in_shape),
            "out_shape": list(self.out_shape), "kernel": list(self.kernel),
            "weight_bits": self.weight_bits, "activation_bits": self.activation_bits,
            "output": "activation",
            "arrays": {"weights": f"{self.name}/weights.npy",
                       "thresholds": f"{self.name}/thresholds.npy"},
        }
        arrays = {f"{self.name}/weights.npy": conventions.pack_bits(self.weights),
                  f"{self.name}/thresholds.npy": self.thresholds.astype(np.int32)}
        # Written only when not 1, so earlier models keep their manifests and checksums.
        if self.in_bits != 1:
            entry["in_bits"] = int(self.in_bits)
        if self.stride != 1:
            entry["stride"] = int(self.stride)
        if self.pad:
            entry["pad"], entry["pad_value"] = int(self.pad), int(self.pad_value)
        return entry, arrays

    @classmethod
    def from_manifest(cls, entry, get_array, where):
        """Build the layer from its manifest entry, checking shapes against each other."""
        in_shape, kernel, out_shape, in_bits, geometry = map_fields(entry, where, cls.kind)
        if entry.get("weight_bits", 1) != 1:
            raise ValueError(f"{where}: weight_bits must be 1 for binary_conv2d, "
                             f"not {entry.get('weight_bits')!r}")
        arrays = manifest_field(entry, "arrays", dict, where)
        k, n = kernel[0] * kernel[1] * in_shape[2], out_shape[2]
        weights = read_weights(arrays, get_array, where, k, n)
        thresholds = read_thresholds(entry, arrays, get_array, where,
                                     ((1 << in_bits) - 1) * k, n)
        return cls(name=str(entry["name"]), in_shape=in_shape, kernel=kernel, weights=weights,
                   thresholds=thresholds, in_bits=in_bits, **geometry)


def check_in_bits(in_bits, where):
    """``ValueError`` naming ``where`` unless ``in_bits`` is an integer in 1..8."""
    if not isinstance(in_bits, int) or isinstance(in_bits, bool) or not 1 <= in_bits <= 8:
        raise ValueError(f"{where}: in_bits must be an integer in 1..8, not {in_bits!r}")


def map_fields(entry, where, kind):
    """``(in_shape, kernel, out_shape, in_bits, geometry)`` of a conv kind's manifest entry,
    checked against each other, with its widths and its ``output``; ``geometry`` holds
    ``stride``, ``pad`` and ``pad_value`` (:attr:`Conv2dLayer.geometry`)."""
    in_shape = shape_field(entry, "in_shape", 3, where)
    kernel = shape_field(entry, "kernel", 2, where)
    out_shape = shape_field(entry, "out_shape", 3, where)
    stride, pad = entry.get("stride", 1), entry.get("pad", 0)
    try:
        expected = conv_out_shape(in_shape, kernel, out_shape[2], stride, pad)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    if out_shape != expected:
        raise ValueError(f"{where}: out_shape {list(out_shape)} does not follow from "
                         f"in_shape {list(in_shape)}, kernel {list(kernel)}, stride "
                         f"{stride} and pad {pad} (expected {list(expected)})")
    hidden_map_fields(entry, in_shape, out_shape, where, kind)
    in_bits = entry.get("in_bits", 1)
    check_in_bits(in_bits, where)
    pad_value, top = entry.get("pad_value", 0), (1 << in_bits) - 1
    if not _is_int(pad_value) or not 0 <= pad_value <= top:
        raise ValueError(f"{where}: pad_value must be an input code in 0..{top}, not "
                         f"{pad_value!r}")
    geometry = {"stride": stride, "pad": pad, "pad_value": pad_value}
    return in_shape, kernel, out_shape, in_bits, geometry
