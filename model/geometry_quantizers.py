"""The weight quantizers that :mod:`bnnflow.model.geometry` measures, with their angles to
Gaussian weights in the limit of many inputs (Anderson & Berg, 2017, and its ternary
extension): binary (``sign``), ternary with a zero band of 0.7 x mean |w| (Li & Liu), and
ternary with a balanced zero band (a third of each neuron's weights zero, as ``--quantizer
balanced`` trains it).
"""

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Quantizer", "QUANTIZERS", "THEORY_ANGLE_DEG", "quantizer", "sign"]


def sign(w):
    """``sign(w)`` with ``sign(0) = +1``, as float."""
    return np.where(np.asarray(w) >= 0, 1.0, -1.0)


def _ternary(w, ratio=0.7):
    """``sign(w)`` where ``|w| >= ratio * mean|w|`` of the row, else 0 (the rule of
    :class:`~bnnflow.model.layers.TernaryLinear`)."""
    w = np.asarray(w, dtype=np.float64)
    delta = ratio * np.mean(np.abs(w), axis=-1, keepdims=True)
    return np.where(np.abs(w) >= delta, np.where(w >= 0, 1.0, -1.0), 0.0)


def _ternary_balanced(w):
    """``sign(w)`` where ``|w|`` reaches the ``1/3`` quantile of the row's ``|w|``, else 0 (the
    balanced rule of :func:`~bnnflow.model.layers.ternary_delta`)."""
    w = np.asarray(w, dtype=np.float64)
    delta = np.quantile(np.abs(w), 1 / 3, axis=-1, keepdims=True)
    return np.where(np.abs(w) >= delta, np.where(w >= 0, 1.0, -1.0), 0.0)


def _ternary_gaussian_cos(t):
    """Limit of ``cos(w, t(w))`` for Gaussian ``w`` whose zero band is ``|w| < t`` standard
    deviations."""
    kept = math.erfc(t / math.sqrt(2))                           # P(|w| > t)
    abs_mass = math.sqrt(2 / math.pi) * math.exp(-t * t / 2)     # E[|w|; |w| > t]
    return abs_mass / math.sqrt(kept)


# Zero bands in standard deviations: 0.7 mean|w| (mean|w| = sqrt(2/pi) s), and the |w| that
# leaves a third of a Gaussian's values below it (P(|w| < t) = 1/3, t = Phi^-1(2/3)).
_TERNARY_T = 0.7 * math.sqrt(2 / math.pi)
_BALANCED_T = 0.4307272992954576


@dataclass(frozen=True)
class Quantizer:
    """A weight quantizer and its limit angle for Gaussian weights.

    Parameters
    ----------
    name : str
    quantize : callable
        Maps a real array ``(N, K)`` to its quantized version ``(N, K)`` (float), row by row
        (one row is one neuron's weight vector).
    gaussian_cos : float
        Limit of ``cos(w, quantize(w))`` for i.i.d. Gaussian ``w`` as ``K -> infinity``.
    description : str
    """

    name: str
    quantize: object
    gaussian_cos: float
    description: str

    @property
    def theory_angle_deg(self):
        """``arccos(gaussian_cos)`` in degrees."""
        return math.degrees(math.acos(self.gaussian_cos))


#: name -> :class:`Quantizer`. ``"binary"`` is what bnnflow networks use today.
QUANTIZERS = {
    "binary": Quantizer("binary", sign, math.sqrt(2 / math.pi),
                        "sign(w), sign(0) = +1; limit angle arccos(sqrt(2/pi))"),
    "ternary": Quantizer("ternary", _ternary, _ternary_gaussian_cos(_TERNARY_T),
                         "sign(w) where |w| > 0.7 mean|w| of the neuron, else 0"),
    "ternary-balanced": Quantizer("ternary-balanced", _ternary_balanced,
                                  _ternary_gaussian_cos(_BALANCED_T),
                                  "sign(w) where |w| reaches the 1/3 quantile of the neuron's "
                                  "|w|, else 0"),
}

#: The paper's angle between a Gaussian vector and its binarized version, in degrees (37.07).
THEORY_ANGLE_DEG = QUANTIZERS["binary"].theory_angle_deg


def quantizer(name):
    """The :class:`Quantizer` of a name; ``ValueError`` naming the known ones."""
    if name not in QUANTIZERS:
        raise ValueError(f"quantizer must be one of {sorted(QUANTIZERS)}, not {name!r}")
    return QUANTIZERS[name]
