"""Argmax: the last layer's popcounts to a class index, lowest index on ties.

A balanced tournament of comparisons picks, for each pair of adjacent candidates, the left one
(lower indices) when its score is ``>=`` the right one's, so the winner is the lowest index of
the maximum, exactly :func:`bnnflow.model.conventions.argmax_lowest`. The result sits in one
output register (a stream register stage, one transfer per cycle).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["Argmax", "class_width"]


def class_width(count):
    """Bits of the class index for ``count`` classes: ``max(1, ceil(log2(count)))``."""
    return max(1, ceil_log2(count))


class Argmax(wiring.Component):
    """Stream of score vectors in, stream of (class index, scores) out.

    Parameters
    ----------
    count : int
        Number of classes ``C``, ``>= 1``.
    width : int
        Bits per score ``pw``; score ``c`` is at input bits ``[c*pw, (c+1)*pw)``, unsigned.

    Members
    -------
    i : In(stream.Signature(count * width))
        Scores.
    o : Out(stream.Signature(cw + count * width))
        Bits ``[0, cw)``: class index (``cw = class_width(count)``); then the scores as they
        came in. One cycle after the input transfer.

    Raises
    ------
    ValueError
        If ``count`` or ``width`` is not a positive integer.
    """

    def __init__(self, count, width):
        for name, value in (("count", count), ("width", width)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.count, self.width = count, width
        self.class_width = class_width(count)
        super().__init__({
            "i": In(stream.Signature(count * width)),
            "o": Out(stream.Signature(self.class_width + count * width)),
        })

    def elaborate(self, platform):
        m = Module()
        cw, pw = self.class_width, self.width
        nodes = [(Signal(cw, init=c, name=f"idx_{c}"), self.i.payload[c * pw:(c + 1) * pw])
                 for c in range(self.count)]
        for c, (idx, _) in enumerate(nodes):
            m.d.comb += idx.eq(c)
        level = 0
        while len(nodes) > 1:
            nxt = []
            for j in range(0, len(nodes) - 1, 2):
                (ia, va), (ib, vb) = nodes[j], nodes[j + 1]
                take_a = Signal(name=f"am_l{level}_{j // 2}_left")
                m.d.comb += take_a.eq(va >= vb)
                idx = Signal(cw, name=f"am_l{level}_{j // 2}_idx")
                val = Signal(pw, name=f"am_l{level}_{j // 2}_val")
                m.d.comb += [idx.eq(Mux(take_a, ia, ib)), val.eq(Mux(take_a, va, vb))]
                nxt.append((idx, val))
            if len(nodes) % 2:
                nxt.append(nodes[-1])
            nodes = nxt
            level += 1
        (winner, _), = nodes

        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [self.o.valid.eq(1),
                         self.o.payload.eq(Cat(winner, self.i.payload))]
        return m
