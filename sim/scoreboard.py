"""The scoreboard of every simulator back end: where the class and popcounts sit in the output
payload (:class:`OutputLayout`, from the sidecar) and the bit-for-bit comparison of the outputs
with the golden model (:class:`Scoreboard`, one :class:`Mismatch` per wrong or missing image).
The stimulus side (driver, monitor, stalls, reset) is :mod:`bnnflow.sim.stimulus`.
"""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["OutputLayout", "Mismatch", "Scoreboard"]


@dataclass(frozen=True)
class OutputLayout:
    """Where the class and the popcounts sit in ``o.payload`` (the sidecar's ``output_layout``).

    Parameters
    ----------
    class_width : int
        ``cw``: bits ``[0, cw)`` hold the class index.
    popcount_width : int
        ``pw``: popcount of class ``c`` at bits ``[cw + c*pw, cw + (c+1)*pw)``.
    classes : int
        Number of classes ``C``.
    """

    class_width: int
    popcount_width: int
    classes: int

    @classmethod
    def from_sidecar(cls, sidecar):
        layout = sidecar["output_layout"]
        return cls(class_width=int(layout["class"]["width"]),
                   popcount_width=int(layout["popcounts"]["width"]),
                   classes=int(layout["popcounts"]["count"]))

    def popcounts(self, value, lsb=None):
        """The ``C`` popcounts packed in ``value`` from bit ``lsb`` (default: after the class)."""
        lsb = self.class_width if lsb is None else lsb
        mask = (1 << self.popcount_width) - 1
        return [(int(value) >> (lsb + c * self.popcount_width)) & mask
                for c in range(self.classes)]

    def decode(self, value):
        """``(class, popcounts)`` of an output payload."""
        value = int(value)
        return value & ((1 << self.class_width) - 1), self.popcounts(value)


@dataclass(frozen=True)
class Mismatch:
    """One image whose hardware output differs from the golden model."""

    image: int
    expected: dict
    actual: dict | None

    def to_dict(self):
        return {"image": self.image, "expected": self.expected, "actual": self.actual}


@dataclass
class Scoreboard:
    """Compares output payloads with the golden model's classes and final popcounts.

    Parameters
    ----------
    classes : int array ``(B,)``
        Golden classes of the stimulus images, in stream order.
    popcounts : int array ``(B, C)``
        Golden final popcounts.
    layout : OutputLayout
    image_ids : sequence of int or None
        The data-set index of each stimulus image (reported in mismatches); default ``0..B-1``.
    """

    classes: np.ndarray
    popcounts: np.ndarray
    layout: OutputLayout
    image_ids: list | None = None
    mismatches: list = field(default_factory=list)

    def expected(self, k):
        return {"class": int(self.classes[k]),
                "popcounts": [int(v) for v in self.popcounts[k]]}

    def check(self, payloads):
        """Compare the outputs received, in order; a missing output is a mismatch.

        Returns the list of :class:`Mismatch` (also kept in :attr:`mismatches`).
        """
        self.mismatches = []
        ids = self.image_ids if self.image_ids is not None else range(len(self.classes))
        ids = list(ids)
        for k in range(len(self.classes)):
            expected = self.expected(k)
            if k >= len(payloads):
                self.mismatches.append(Mismatch(ids[k], expected, None))
                continue
            cls, pcs = self.layout.decode(payloads[k])
            actual = {"class": cls, "popcounts": pcs}
            if actual != expected:
                self.mismatches.append(Mismatch(ids[k], expected, actual))
        return self.mismatches
