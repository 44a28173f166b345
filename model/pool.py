"""The ``maxpool2d`` layer kind: max-pool of a binary (or ``n``-bit level) channels-last map.

Max-pool acts on activations after the threshold, so the maximum of a window is the OR of its
bits (bit 1 = +1 is the larger value), or for ``n``-bit activations its largest level:
``k x k`` windows with stride ``s`` and no padding turn an ``H x W x C`` map into
``((H - k) // s + 1) x ((W - k) // s + 1) x C``
(:func:`bnnflow.model.conventions.maxpool_or`). The layer has no weights and no thresholds.
The members are those of :class:`bnnflow.model.kinds.LayerKind`: its "matrix" is ``C``
channels of ``k * k`` inputs per output pixel, and it takes one cycle per input pixel.
"""

from dataclasses import dataclass

import numpy as np

from . import conventions
from .kinds import hidden_map_fields, positive_int, shape_field

__all__ = ["MaxPool2dLayer", "pool_out_shape"]


def pool_out_shape(in_shape, window, stride):
    """``((H - k) // s + 1, (W - k) // s + 1, C)``; ``ValueError`` for a window that does not
    fit or a stride larger than the window (which would skip pixels)."""
    h, w, c = in_shape
    if window < 1 or stride < 1:
        raise ValueError(f"pool window and stride must be positive, not {window} and {stride}")
    if window > min(h, w):
        raise ValueError(f"pool window {window} is larger than the {h}x{w} input map")
    if stride > window:
        raise ValueError(f"pool stride {stride} is larger than its window {window}: pixels "
                         f"between windows would be dropped")
    return ((h - window) // stride + 1, (w - window) // stride + 1, c)


@dataclass(frozen=True)
class MaxPool2dLayer:
    """A binary max-pool layer (kind ``maxpool2d``).

    Parameters
    ----------
    name : str
    in_shape : (H, W, C)
        The input map, channels-last (binary activations).
    window : int
        ``k`` of the ``k x k`` window.
    stride : int or None
        Step between windows; ``None`` means ``window`` (non-overlapping windows).
    bits : int
        Bits per element: 1 (the OR of bits), or ``n`` for ``n``-bit activation levels, whose
        maximum is the maximum level (the levels are monotone in the value they stand for).
    """

    name: str
    in_shape: tuple
    window: int
    stride: int | None = None
    bits: int = 1

    kind = "maxpool2d"
    weight_bits = 0
    synapses = 0
    folds = False       # one pixel a cycle whatever the folding
    is_output = False

    @property
    def in_bits(self):
        return self.bits

    @property
    def activation_bits(self):
        return self.bits

    def __post_init__(self):
        object.__setattr__(self, "in_shape", tuple(int(v) for v in self.in_shape))
        if self.stride is None:
            object.__setattr__(self, "stride", int(self.window))
        if len(self.in_shape) != 3:
            raise ValueError(f"{self.name}: in_shape must be (H, W, C), not {self.in_shape}")
        pool_out_shape(self.in_shape, self.window, self.stride)
        if (isinstance(self.bits, bool) or not isinstance(self.bits, int)
                or not 1 <= self.bits <= 8):
            raise ValueError(f"{self.name}: bits must be an integer in 1..8, not {self.bits!r}")

    @property
    def out_shape(self):
        return pool_out_shape(self.in_shape, self.window, self.stride)

    @property
    def in_width(self):
        return int(np.prod(self.in_shape))

    @property
    def out_width(self):
        return int(np.prod(self.out_shape))

    @property
    def neurons(self):
        return self.in_shape[2]

    @property
    def fan_in(self):
        return self.window * self.window

    @property
    def output_pixels(self):
        return self.out_shape[0] * self.out_shape[1]

    def forward(self, x):
        """``(values, counts)``: the pooled bits or levels ``(B, Ho * Wo * C)``, and the same
        values as integers (a pool computes no popcount)."""
        bits = conventions.maxpool_or(x, self.in_shape, self.window, self.stride)
        return bits, bits.astype(np.int64)

    def cycles(self, fold):
        """One cycle per input pixel (``H * W``), whatever the folding: the pool takes the
        stream of its input map as it comes."""
        return self.in_shape[0] * self.in_shape[1]

    @staticmethod
    def preactivation(x, weights, in_shape, window, stride):
        """Real-valued max-pool of maps ``x`` ``(B, H * W * C)`` (``weights`` unused)."""
        h, w, c = in_shape
        m = np.asarray(x).reshape(len(x), h, w, c)
        view = np.lib.stride_tricks.sliding_window_view(m, (window, window), axis=(1, 2))
        return view[:, ::stride, ::stride].max(axis=(-2, -1)).reshape(len(x), -1)

    def describe(self):
        facts = {"in_shape": list(self.in_shape), "out_shape": list(self.out_shape),
                 "window": self.window, "stride": self.stride}
        if self.bits != 1:
            facts["bits"] = self.bits
        return facts

    def to_manifest(self):
        entry = {"name": self.name, "kind": self.kind, "in_width": self.in_width,
                 "out_width": self.out_width, "in_shape": list(self.in_shape),
                 "out_shape": list(self.out_shape), "window": self.window,
                 "stride": self.stride, "weight_bits": 0, "activation_bits": self.bits,
                 "output": "activation", "arrays": {}}
        return entry, {}

    @classmethod
    def from_manifest(cls, entry, get_array, where):
        """Build the layer from its manifest entry, checking shapes against each other."""
        in_shape = shape_field(entry, "in_shape", 3, where)
        out_shape = shape_field(entry, "out_shape", 3, where)
        window = positive_int(entry, "window", where)
        stride = positive_int(entry, "stride", where)
        try:
            expected = pool_out_shape(in_shape, window, stride)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        if out_shape != expected:
            raise ValueError(f"{where}: out_shape {list(out_shape)} does not follow from "
                             f"in_shape {list(in_shape)}, window {window} and stride {stride} "
                             f"(expected {list(expected)})")
        hidden_map_fields(entry, in_shape, out_shape, where, cls.kind)
        bits = positive_int(entry, "activation_bits", where) if "activation_bits" in entry else 1
        try:
            return cls(name=str(entry["name"]), in_shape=in_shape, window=window, stride=stride,
                       bits=bits)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
