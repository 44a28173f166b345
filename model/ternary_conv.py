"""The ``ternary_conv2d`` layer kind: a convolution with weights in {-1, 0, +1}.

The shape rules are those of ``binary_conv2d`` (:class:`~bnnflow.model.conv.Conv2dLayer`,
which this kind extends: a stride, a pad and its code, windows in ``(kh, kw, Cin)`` order), the
arithmetic that of ``ternary_dense`` (:class:`~bnnflow.model.ternary.TernaryDenseLayer`): each
output channel has a sign bit and a mask bit per window position and fires when its live
popcount ``popcount(XNOR(x, s) AND z)`` (with ``n``-bit inputs, the masked
:func:`~bnnflow.model.conventions.popcount_levels`) reaches its threshold, each in
``[0, L*m + 1]`` for its ``m`` live weights. No new rule: :mod:`bnnflow.model.conventions`,
"Ternary weights" and "Convolution". Its hardware unit is :class:`bnnflow.hw.conv.ConvUnit`,
whose MVTU gets the mask.
"""

from dataclasses import dataclass, field

import numpy as np

from . import conventions
from .conv import Conv2dLayer, map_fields
from .kinds import manifest_field
from .ternary import TernaryWeights, read_ternary, ternary_facts

__all__ = ["TernaryConv2dLayer"]


@dataclass(frozen=True)
class TernaryConv2dLayer(TernaryWeights, Conv2dLayer):
    """A convolution layer with ternary weights (kind ``ternary_conv2d``).

    Parameters
    ----------
    name, in_shape, kernel, in_bits
        As :class:`~bnnflow.model.conv.Conv2dLayer`.
    weights : array of 0/1, shape ``(Cout, kh * kw * Cin)``
        Sign bits in ``(kh, kw, Cin)`` window order: 1 is +1, 0 is -1 where the mask is 1; 0
        where the mask is 0.
    thresholds : int array ``(Cout, T)``
        Sorted live-popcount thresholds per output channel.
    mask : array of 0/1, shape ``(Cout, kh * kw * Cin)`` (keyword)
        1 where the weight is live (non-zero).

    Raises
    ------
    ValueError
        The shape errors of ``binary_conv2d`` and the value errors of ``ternary_dense``.
    """

    mask: np.ndarray = field(kw_only=True)

    kind = "ternary_conv2d"

    def __post_init__(self):
        super().__post_init__()
        self._check_ternary()

    def _counts(self, rows):
        return conventions.popcount_xnor_masked(rows, self.weights, self.mask, self.in_bits)

    def describe(self):
        return {"in_shape": list(self.in_shape), "out_shape": list(self.out_shape),
                "kernel": list(self.kernel), **self._shape_facts(),
                **ternary_facts(self.mask, self.thresholds, self.in_bits)}

    def to_manifest(self):
        entry, arrays = super().to_manifest()
        entry["arrays"]["mask"] = f"{self.name}/mask.npy"
        arrays[f"{self.name}/mask.npy"] = conventions.pack_bits(self.mask)
        return entry, arrays

    @classmethod
    def from_manifest(cls, entry, get_array, where):
        """Build the layer from its manifest entry, checking shapes against each other."""
        in_shape, kernel, out_shape, in_bits, geometry = map_fields(entry, where, cls.kind)
        arrays = manifest_field(entry, "arrays", dict, where)
        k, n = kernel[0] * kernel[1] * in_shape[2], out_shape[2]
        weights, mask, t = read_ternary(entry, arrays, get_array, where, k, n)
        try:
            return cls(name=str(entry["name"]), in_shape=in_shape, kernel=kernel,
                       weights=weights, thresholds=t, in_bits=in_bits, mask=mask, **geometry)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
