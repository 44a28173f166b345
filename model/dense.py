"""The ``binary_dense`` layer kind: a fully connected layer with binary weights.

``K`` inputs, ``N`` neurons, weights ``(N, K)`` of bits (1 is +1, 0 is -1). A hidden layer
compares each neuron's XNOR popcount with its sorted integer thresholds
(:func:`~bnnflow.model.conventions.fire`); the output layer emits the popcounts. Its hardware
unit is :class:`bnnflow.hw.mvtu.MVTU`. The members are those of
:class:`bnnflow.model.kinds.LayerKind`.
"""

from dataclasses import dataclass

import numpy as np

from . import conventions
from .kinds import manifest_field, matrix_cycles, positive_int

__all__ = ["DenseLayer", "MatrixShape", "read_weights", "read_thresholds", "threshold_facts"]


class MatrixShape:
    """The shape, folding and geometry members of a fully connected layer kind, from its
    ``(N, K)`` ``weights``."""

    def cycles(self, fold):
        """``ceil(N / PE) * ceil(K / SIMD)``."""
        return matrix_cycles(self.in_width, self.out_width, fold)

    @staticmethod
    def preactivation(x, weights):
        """``x @ weights.T``: inputs ``(B, K)`` against (latent or quantized) real weights
        ``(N, K)``."""
        return x @ weights.T

    @property
    def in_width(self):
        return int(self.weights.shape[1])

    @property
    def out_width(self):
        return int(self.weights.shape[0])

    @property
    def neurons(self):
        return self.out_width

    @property
    def fan_in(self):
        return self.in_width

    @property
    def synapses(self):
        return self.in_width * self.out_width


@dataclass(frozen=True)
class DenseLayer(MatrixShape):
    """A fully connected binary layer (kind ``binary_dense``).

    Parameters
    ----------
    name : str
    weights : array of 0/1, shape ``(N, K)``
        Bit 1 is weight +1, bit 0 is weight -1.
    thresholds : int array ``(N, T)`` or None
        Sorted popcount thresholds per neuron (``T = 1`` for binary activations); ``None`` for
        the output layer, which emits popcounts.
    in_bits : int
        Bits per input element: 1 (binary inputs), or ``n`` after a layer with ``n``-bit
        activations (:func:`~bnnflow.model.conventions.popcount_levels`; thresholds then lie
        in ``[0, L*K + 1]``, ``L = 2**n - 1``).
    """

    name: str
    weights: np.ndarray
    thresholds: np.ndarray | None = None
    in_bits: int = 1

    kind = "binary_dense"
    weight_bits = 1
    output_pixels = 1


    @property
    def is_output(self):
        """True when the layer emits popcounts instead of activations."""
        return self.thresholds is None

    @property
    def activation_bits(self):
        """Bits per output activation; ``None`` for a popcount output layer."""
        if self.thresholds is None:
            return None
        return int(self.thresholds.shape[1] + 1).bit_length() - 1

    @property
    def max_count(self):
        """The largest popcount, ``L * K`` (``K`` for binary inputs)."""
        return ((1 << self.in_bits) - 1) * self.in_width

    def forward(self, x):
        """``(activations, popcounts)`` for inputs ``(B, K)`` (bits, or ``in_bits``-bit
        levels); the output layer returns its popcounts twice."""
        if self.in_bits == 1:
            p = conventions.popcount_xnor(x, self.weights)
        else:
            p = conventions.popcount_levels(x, self.weights, self.in_bits)
        if self.is_output:
            return p, p
        return conventions.fire(p, self.thresholds), p

    def describe(self):
        """Thresholds range and constant neurons of a hidden layer (nothing for the output)."""
        if self.is_output:
            return {}
        return threshold_facts(self.thresholds, self.max_count)

    def to_manifest(self):
        entry = {
            "name": self.name, "kind": self.kind, "in_width": self.in_width,
            "out_width": self.out_width, "weight_bits": self.weight_bits,
            "activation_bits": self.activation_bits,
            "output": "popcount" if self.is_output else "activation",
            "arrays": {"weights": f"{self.name}/weights.npy"},
        }
        arrays = {f"{self.name}/weights.npy": conventions.pack_bits(self.weights)}
        if self.in_bits != 1:
            # Written only when not 1, so binary models keep their manifests and checksums.
            entry["in_bits"] = int(self.in_bits)
        if not self.is_output:
            entry["arrays"]["thresholds"] = f"{self.name}/thresholds.npy"
            arrays[f"{self.name}/thresholds.npy"] = self.thresholds.astype(np.int32)
        return entry, arrays

    @classmethod
    def from_manifest(cls, entry, get_array, where):
        """Build the layer from its manifest entry; ``get_array(name)`` returns an array."""
        k, n = positive_int(entry, "in_width", where), positive_int(entry, "out_width", where)
        arrays = manifest_field(entry, "arrays", dict, where)
        output = manifest_field(entry, "output", str, where)
        if output not in ("activation", "popcount"):
            raise ValueError(f"{where}: output must be 'activation' or 'popcount', "
                             f"not {output!r}")
        if entry.get("weight_bits", 1) != 1:
            raise ValueError(f"{where}: weight_bits must be 1 for binary_dense, "
                             f"not {entry.get('weight_bits')!r}")
        weights = read_weights(arrays, get_array, where, k, n)
        in_bits = entry.get("in_bits", 1)
        if not isinstance(in_bits, int) or isinstance(in_bits, bool) or not 1 <= in_bits <= 8:
            raise ValueError(f"{where}: in_bits must be an integer in 1..8, not {in_bits!r}")
        thresholds = None
        if output == "activation":
            thresholds = read_thresholds(entry, arrays, get_array, where,
                                         ((1 << in_bits) - 1) * k, n)
        return cls(name=str(entry["name"]), weights=weights, thresholds=thresholds,
                   in_bits=in_bits)


def read_weights(arrays, get_array, where, k, n, field="weights"):
    """The ``(N, K)`` weight bits of a layer from its packed manifest array ``field``
    (``"mask"``: a ternary layer's mask, packed alike), checked: dtype, shape and zero padding
    bits."""
    packed = get_array(manifest_field(arrays, field, str, where))
    if packed.dtype != np.uint8 or packed.shape != (n, (k + 7) // 8):
        raise ValueError(f"{where}: {field} must be uint8 of shape {(n, (k + 7) // 8)} "
                         f"for {n} neurons of {k} inputs, not {packed.dtype} "
                         f"{tuple(packed.shape)}")
    weights = conventions.unpack_bits(packed, k)
    if k % 8 and np.any(conventions.unpack_bits(packed, packed.shape[1] * 8)[:, k:]):
        raise ValueError(f"{where}: {field} {'have' if field == 'weights' else 'has'} non-zero "
                         f"padding bits past input {k}")
    return weights


def read_thresholds(entry, arrays, get_array, where, k, n):
    """A hidden layer's thresholds from the manifest, checked: shape, range ``[0, k + 1]``
    (``k`` the largest popcount), order."""
    bits = positive_int(entry, "activation_bits", where)
    t = get_array(manifest_field(arrays, "thresholds", str, where))
    expected = (n, 2 ** bits - 1)
    if t.dtype.kind not in "iu" or t.shape != expected:
        raise ValueError(f"{where}: thresholds must be integers of shape {expected}, "
                         f"not {t.dtype} {tuple(t.shape)}")
    t = t.astype(np.int64)
    if t.size and (t.min() < 0 or t.max() > k + 1):
        raise ValueError(f"{where}: threshold out of range: values must lie in "
                         f"[0, {k + 1}] for {k} inputs, found [{t.min()}, {t.max()}]")
    if np.any(np.diff(t, axis=1) < 0):
        raise ValueError(f"{where}: thresholds of a neuron must be sorted ascending")
    return t


def threshold_facts(thresholds, k):
    """Range of the thresholds and count of constant neurons (for ``bnnflow inspect``)."""
    t = thresholds
    return {"threshold_min": int(t.min()), "threshold_max": int(t.max()),
            "always_fire": int(np.sum(t[:, 0] <= 0)), "never_fire": int(np.sum(t[:, -1] > k))}
