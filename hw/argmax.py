"""Argmax: the last layer's popcounts to a class index, lowest index on ties.

A balanced tournament of comparisons picks, for each pair of adjacent candidates, the left one
(lower indices) when its score is ``>=`` the right one's, so the winner is the lowest index of
the maximum, exactly :func:`bnnflow.model.conventions.argmax_lowest`. The tournament has
``levels = ceil(log2(C))`` rows of compare-and-select; ``stages`` pipeline registers
(``0 <= stages <= max(levels - 1, 0)``) are spread evenly between the rows, and the result sits
in one output register, so the latency is ``1 + stages`` cycles and one vector is accepted per
cycle. Every register stage carries a valid bit and the scores; all stages advance together
when the output register is empty or being read (``i.ready = ~o.valid | o.ready``).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["Argmax", "argmax_levels", "class_width", "register_rows"]


def class_width(count):
    """Bits of the class index for ``count`` classes: ``max(1, ceil(log2(count)))``."""
    return max(1, ceil_log2(count))


def argmax_levels(count):
    """Rows of compare-and-select in the tournament over ``count`` classes:
    ``ceil(log2(count))`` (0 for one class)."""
    return ceil_log2(count)


def register_rows(levels, stages):
    """Rows after which an inner register sits: ``stages`` of ``1..levels-1``, evenly spread
    (the segments between registers differ by at most one row)."""
    return [(s + 1) * levels // (stages + 1) for s in range(stages)]


class Argmax(wiring.Component):
    """Stream of score vectors in, stream of (class index, scores) out.

    Parameters
    ----------
    count : int
        Number of classes ``C``, ``>= 1``.
    width : int
        Bits per score ``pw``; score ``c`` is at input bits ``[c*pw, (c+1)*pw)``, unsigned.
    stages : int
        Pipeline registers inside the tournament, ``0 <= stages <= max(levels - 1, 0)`` with
        ``levels = ceil(log2(C))``; each one shortens the longest compare chain and adds one
        cycle of latency.

    Members
    -------
    i : In(stream.Signature(count * width))
        Scores.
    o : Out(stream.Signature(cw + count * width))
        Bits ``[0, cw)``: class index (``cw = class_width(count)``); then the scores as they
        came in. ``1 + stages`` cycles after the input transfer.

    Attributes
    ----------
    levels : int
        ``ceil(log2(C))`` rows of comparisons.
    latency : int
        ``1 + stages``.

    Raises
    ------
    ValueError
        If ``count`` or ``width`` is not a positive integer, or ``stages`` is not an integer in
        ``0..max(levels - 1, 0)``.
    """

    def __init__(self, count, width, stages=0):
        for name, value in (("count", count), ("width", width)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.count, self.width = count, width
        self.class_width = class_width(count)
        self.levels = argmax_levels(count)
        top = max(self.levels - 1, 0)
        if (not isinstance(stages, int) or isinstance(stages, bool)
                or not 0 <= stages <= top):
            raise ValueError(f"stages must be an integer in 0..{top}, not {stages!r}")
        self.stages = stages
        self.latency = 1 + stages
        super().__init__({
            "i": In(stream.Signature(count * width)),
            "o": Out(stream.Signature(self.class_width + count * width)),
        })

    def elaborate(self, platform):
        m = Module()
        cw, pw = self.class_width, self.width
        # All stages move together: when the output register is free or being read.
        advance = Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance)]

        nodes = []
        for c in range(self.count):
            idx = Signal(cw, init=c, name=f"idx_{c}")
            m.d.comb += idx.eq(c)
            nodes.append((idx, self.i.payload[c * pw:(c + 1) * pw]))
        valid, scores = self.i.valid, self.i.payload
        rows = register_rows(self.levels, self.stages)
        for level in range(1, self.levels + 1):
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
            if level in rows:
                # Register stage: survivors (index, score), the valid bit and all scores.
                staged = []
                for j, (idx, val) in enumerate(nodes):
                    r_idx = Signal(cw, name=f"am_r{level}_{j}_idx")
                    r_val = Signal(pw, name=f"am_r{level}_{j}_val")
                    with m.If(advance):
                        m.d.sync += [r_idx.eq(idx), r_val.eq(val)]
                    staged.append((r_idx, r_val))
                r_valid = Signal(name=f"am_r{level}_valid")
                r_scores = Signal(len(scores), name=f"am_r{level}_scores")
                with m.If(advance):
                    m.d.sync += [r_valid.eq(valid), r_scores.eq(scores)]
                nodes, valid, scores = staged, r_valid, r_scores
        (winner, _), = nodes

        with m.If(advance):
            m.d.sync += self.o.valid.eq(valid)
            with m.If(valid):
                m.d.sync += self.o.payload.eq(Cat(winner, scores))
        return m
