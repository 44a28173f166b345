"""Threshold stage: popcounts to activations, one or more sorted thresholds per neuron.

For a neuron with thresholds ``t_0 <= ... <= t_{T-1}`` and popcount ``p`` the activation is the
number of thresholds reached, ``a = sum(p >= t_i)`` in ``0..T`` (``bits_for(T)`` bits), exactly
:func:`bnnflow.model.conventions.fire`. ``T = 1`` is the binary activation (bit 1 when
``p >= t``); ``t = 0`` always fires, ``t = K + 1`` never does. ``T = 2**n - 1`` gives ``n``-bit
activations.

Folded layers compute ``PE`` neurons per cycle; the unit then holds the thresholds of all
``ceil(N / PE)`` neuron folds and ``fold`` selects which PE neurons are on its inputs (padded
neurons past ``N`` get threshold 0; their outputs are dropped by the layer). With
``select_ahead`` the selected thresholds sit in a register: ``fold`` is then given one enabled
cycle (``en``) before the popcounts it belongs to, so the compare starts from a register instead
of a ``ceil(N / PE)``-way multiplexer, and the latency stays zero.
"""

import numpy as np
from amaranth.hdl import Array, Const, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

__all__ = ["Threshold"]


class Threshold(wiring.Component):
    """Multi-threshold unit for ``PE`` neurons of a folded layer (combinational compare).

    Parameters
    ----------
    thresholds : int array ``(N, T)``
        Sorted thresholds per neuron, each ``>= 0``.
    pe : int
        Neurons per cycle, ``1..N``; neuron ``fold * pe + p`` is on lane ``p``.
    width : int
        Bit width of the popcounts.
    select_ahead : bool
        Register the thresholds selected by ``fold`` (enable ``en``): ``fold`` leads the
        popcounts by one enabled cycle. No effect with one group of neurons.

    Members
    -------
    fold : In(range(max(2, ceil(N / pe))))
        Which group of ``pe`` neurons is on the inputs (ignored when there is one group); with
        ``select_ahead``, the group of the popcounts of the next enabled cycle.
    en : In(1)
        Enable of the threshold register (``select_ahead`` only).
    popcounts : In(ArrayLayout(width, pe))
        Popcount of each lane.
    activations : Out(ArrayLayout(bits_for(T), pe))
        Number of thresholds each lane's popcount reaches.

    Raises
    ------
    ValueError
        If ``thresholds`` is not a non-empty ``(N, T)`` integer array of sorted non-negative
        rows, or ``pe``/``width`` is out of range.
    """

    def __init__(self, thresholds, pe, width, *, select_ahead=False):
        t = np.asarray(thresholds)
        if t.ndim != 2 or t.size == 0 or t.dtype.kind not in "iu":
            raise ValueError(f"thresholds must be a non-empty (N, T) integer array, not "
                             f"{t.dtype} {t.shape}")
        if t.min() < 0 or np.any(np.diff(t, axis=1) < 0):
            raise ValueError("thresholds must be non-negative and sorted ascending per neuron")
        n, count = t.shape
        if not isinstance(pe, int) or isinstance(pe, bool) or not 1 <= pe <= n:
            raise ValueError(f"pe must be an integer in 1..{n}, not {pe!r}")
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        self.n, self.t_count, self.pe, self.width = n, count, pe, width
        self.select_ahead = bool(select_ahead)
        self.folds = -(-n // pe)
        self.act_width = bits_for(count)
        padded = np.zeros((self.folds * pe, count), dtype=np.int64)
        padded[:n] = t
        self.thresholds = padded
        super().__init__({
            "fold": In(range(max(self.folds, 2))),
            "en": In(1),
            "popcounts": In(data.ArrayLayout(width, pe)),
            "activations": Out(data.ArrayLayout(self.act_width, pe)),
        })

    def elaborate(self, platform):
        m = Module()
        t_width = bits_for(int(self.thresholds.max()))
        for p in range(self.pe):
            reached = []
            for i in range(self.t_count):
                column = [int(self.thresholds[f * self.pe + p, i]) for f in range(self.folds)]
                if self.folds == 1:
                    # Constant compare; t = 0 always and t > max popcount never fires.
                    if column[0] == 0:
                        reached.append(Const(1, 1))
                    elif column[0] >= 1 << self.width:
                        reached.append(Const(0, 1))
                    else:
                        reached.append(self.popcounts[p] >= Const(column[0], self.width))
                else:
                    t = Array(Const(v, t_width) for v in column)[self.fold]
                    if self.select_ahead:
                        t_reg = Signal(t_width, name=f"t_{p}_{i}")
                        with m.If(self.en):
                            m.d.sync += t_reg.eq(t)
                        t = t_reg
                    reached.append(self.popcounts[p] >= t)
            m.d.comb += self.activations[p].eq(_tree_sum(reached))
        return m


def _tree_sum(terms):
    """The sum of ``terms`` as a balanced tree of adds: log depth, where a chain of 255 adds
    (8-bit activations) was too deep for Amaranth's simulator (RecursionError) and slow in
    logic."""
    while len(terms) > 1:
        pairs = [a + b for a, b in zip(terms[::2], terms[1::2], strict=False)]
        terms = pairs + terms[len(pairs) * 2:]
    return terms[0]
