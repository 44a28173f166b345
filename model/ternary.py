"""The ``ternary_dense`` layer kind: a fully connected hidden layer with weights in {-1, 0, +1}.

``K`` inputs, ``N`` neurons; each weight is a sign bit and a mask bit
(:mod:`bnnflow.model.conventions`, "Ternary weights"): the mask says which weights are live
(non-zero), the sign which of those are +1. A neuron fires when its live popcount
``popcount(XNOR(x, s) AND z)`` reaches its integer threshold. Only hidden layers are ternary;
the output layer stays ``binary_dense``. Its hardware unit is :class:`bnnflow.hw.mvtu.MVTU`
with a mask beside its weights. The members are those of :class:`bnnflow.model.kinds.LayerKind`.
"""

from dataclasses import dataclass

import numpy as np

from . import conventions
from .dense import MatrixShape, read_weights
from .kinds import manifest_field, positive_int

__all__ = ["TernaryDenseLayer", "TernaryWeights", "ternary_arrays", "ternary_facts", "read_ternary"]


class TernaryWeights:
    """What the ternary kinds (``ternary_dense``, ``ternary_conv2d``) share: sign bits, a mask
    and live-popcount thresholds, checked once (:func:`ternary_arrays`), and ``live``."""

    weight_bits = 2

    def _check_ternary(self):
        w, z, t = ternary_arrays(self.name, self.weights, self.mask, self.thresholds,
                                 self.in_bits, self.kind)
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "mask", z)
        object.__setattr__(self, "thresholds", t)

    @property
    def live(self):
        """Live (non-zero) weights per neuron (output channel), ``m``."""
        return self.mask.sum(axis=1, dtype=np.int64)


@dataclass(frozen=True)
class TernaryDenseLayer(TernaryWeights, MatrixShape):
    """A fully connected hidden layer with ternary weights (kind ``ternary_dense``).

    Parameters
    ----------
    name : str
    weights : array of 0/1, shape ``(N, K)``
        Sign bits: 1 is +1, 0 is -1 where the mask is 1; 0 where the mask is 0.
    mask : array of 0/1, shape ``(N, K)``
        1 where the weight is live (non-zero).
    thresholds : int array ``(N, T)``
        Sorted live-popcount thresholds per neuron, each in ``[0, L*m + 1]`` for its ``m`` live
        weights (``T = 1``: binary activations).
    in_bits : int
        Bits per input element (``n``, ``L = 2**n - 1``; 1 for bits): the live popcount is
        then ``sum (a if s else L - a)`` over the live weights
        (:func:`~bnnflow.model.conventions.popcount_xnor_masked`).

    Raises
    ------
    ValueError
        Shapes that differ, values other than 0/1, a sign bit set where the mask is 0, no
        thresholds, or thresholds out of range or unsorted.
    """

    name: str
    weights: np.ndarray
    mask: np.ndarray
    thresholds: np.ndarray
    in_bits: int = 1

    kind = "ternary_dense"
    output_pixels = 1
    is_output = False

    def __post_init__(self):
        self._check_ternary()

    @property
    def activation_bits(self):
        return int(self.thresholds.shape[1] + 1).bit_length() - 1

    def forward(self, x):
        """``(activations, live popcounts)`` for input bits ``(B, K)``."""
        p = conventions.popcount_xnor_masked(x, self.weights, self.mask, self.in_bits)
        return conventions.fire(p, self.thresholds), p

    def describe(self):
        """Zero weights, and threshold facts against each neuron's live weights."""
        return ternary_facts(self.mask, self.thresholds, self.in_bits)

    def to_manifest(self):
        entry = {
            "name": self.name, "kind": self.kind, "in_width": self.in_width,
            "out_width": self.out_width, "weight_bits": self.weight_bits,
            "activation_bits": self.activation_bits, "output": "activation",
            "arrays": {"weights": f"{self.name}/weights.npy", "mask": f"{self.name}/mask.npy",
                       "thresholds": f"{self.name}/thresholds.npy"},
        }
        arrays = {f"{self.name}/weights.npy": conventions.pack_bits(self.weights),
                  f"{self.name}/mask.npy": conventions.pack_bits(self.mask),
                  f"{self.name}/thresholds.npy": self.thresholds.astype(np.int32)}
        if self.in_bits != 1:
            entry["in_bits"] = int(self.in_bits)
        return entry, arrays

    @classmethod
    def from_manifest(cls, entry, get_array, where):
        """Build the layer from its manifest entry; ``get_array(name)`` returns an array."""
        k, n = positive_int(entry, "in_width", where), positive_int(entry, "out_width", where)
        arrays = manifest_field(entry, "arrays", dict, where)
        if manifest_field(entry, "output", str, where) != "activation":
            raise ValueError(f"{where}: a ternary_dense layer must output activations (the "
                             f"output layer stays binary_dense)")
        weights, mask, t = read_ternary(entry, arrays, get_array, where, k, n)
        in_bits = entry.get("in_bits", 1)
        if not isinstance(in_bits, int) or isinstance(in_bits, bool) or not 1 <= in_bits <= 8:
            raise ValueError(f"{where}: in_bits must be an integer in 1..8, not {in_bits!r}")
        try:
            return cls(name=str(entry["name"]), weights=weights, mask=mask,
                       thresholds=t, in_bits=in_bits)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None


def ternary_arrays(name, weights, mask, thresholds, in_bits, kind="ternary_dense"):
    """``(signs, mask, thresholds)`` of a ternary layer, checked and normalized (uint8, uint8,
    int64 ``(N, T)``): the rules of :class:`TernaryDenseLayer`, which ``ternary_conv2d``
    shares; ``ValueError`` messages start with ``name``."""
    w, z = np.asarray(weights), np.asarray(mask)
    if w.ndim != 2 or w.shape != z.shape:
        raise ValueError(f"{name}: weights and mask must be (N, K) arrays of one "
                         f"shape, not {w.shape} and {z.shape}")
    for label, a in (("weights", w), ("mask", z)):
        if not np.all((a == 0) | (a == 1)):
            raise ValueError(f"{name}: {label} must hold only 0 and 1")
    if np.any(w & (1 - z)):
        raise ValueError(f"{name}: a sign bit is set where the mask is 0 (a zero "
                         f"weight is stored with sign 0)")
    if isinstance(in_bits, bool) or not isinstance(in_bits, int) or not 1 <= in_bits <= 8:
        raise ValueError(f"{name}: in_bits must be an integer in 1..8, not {in_bits!r}")
    if thresholds is None:
        raise ValueError(f"{name}: a {kind} layer is a hidden layer and needs "
                         f"thresholds; the output layer stays binary_dense")
    t = np.asarray(thresholds, dtype=np.int64)
    if t.ndim == 1:
        t = t[:, None]
    live = z.sum(axis=1) * ((1 << in_bits) - 1)
    if t.ndim != 2 or t.shape[0] != w.shape[0] or t.shape[1] < 1:
        raise ValueError(f"{name}: thresholds must have shape ({w.shape[0]}, T), "
                         f"not {t.shape}")
    outside = (t < 0) | (t > (live + 1)[:, None])
    if np.any(outside):
        i, j = np.argwhere(outside)[0]
        raise ValueError(f"{name}: a threshold lies outside [0, L*m + 1] for its neuron's m "
                         f"live weights: neuron {i} has m = {z[i].sum()} (L = "
                         f"{(1 << in_bits) - 1}), threshold {t[i, j]} not in 0..{live[i] + 1}")
    if np.any(np.diff(t, axis=1) < 0):
        raise ValueError(f"{name}: thresholds of a neuron must be sorted ascending")
    return w.astype(np.uint8), z.astype(np.uint8), t


def ternary_facts(mask, thresholds, in_bits):
    """Zero weights, and threshold facts against each neuron's live weights (for ``bnnflow
    inspect``)."""
    t, m = thresholds, mask.sum(axis=1, dtype=np.int64)
    return {"zero_weights": round(float(1 - mask.mean()), 4),
            "threshold_min": int(t.min()), "threshold_max": int(t.max()),
            "always_fire": int(np.sum(t[:, 0] <= 0)),
            "never_fire": int(np.sum(t[:, -1] > m * ((1 << in_bits) - 1)))}


def read_ternary(entry, arrays, get_array, where, k, n):
    """Signs, mask and raw thresholds of a ternary layer's manifest entry (shapes checked;
    the layer's constructor checks the values)."""
    if entry.get("weight_bits") != 2:
        raise ValueError(f"{where}: weight_bits must be 2 for {entry.get('kind')}, "
                         f"not {entry.get('weight_bits')!r}")
    weights = read_weights(arrays, get_array, where, k, n)
    mask = read_weights(arrays, get_array, where, k, n, field="mask")
    bits = positive_int(entry, "activation_bits", where)
    t = get_array(manifest_field(arrays, "thresholds", str, where))
    if t.dtype.kind not in "iu" or t.shape != (n, 2 ** bits - 1):
        raise ValueError(f"{where}: thresholds must be integers of shape "
                         f"{(n, 2 ** bits - 1)}, not {t.dtype} {tuple(t.shape)}")
    return weights, mask, t.astype(np.int64)
