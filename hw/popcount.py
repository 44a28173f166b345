"""Pipelined popcount: a balanced adder tree with a configurable number of register stages.

Level 1 compresses the input bits in groups of three with full adders (3 bits -> a 2-bit count,
plain XOR/AND/OR logic); the following levels add the counts pairwise, so there are
``1 + ceil(log2(width // 3 + width % 3))`` levels for ``width >= 3`` (``ceil(log2(width))``
below). ``stages`` register stages are spread evenly over the levels (the last one on the
output), so Fmax can be raised without changing throughput: a new input is accepted every
enabled cycle and its count appears ``stages`` enabled cycles later.

Why the full-adder level: synthesized in a fully parallel 64x64 MVTU (``synth_ecp5`` /
``synth_ice40``, Yosys bundled with yowasp) it took 6392 ECP5 LUT4 instead of 9699 for a plain
pairwise tree of single bits, at 3593 instead of 3463 iCE40 LUT4 (hw/README.md).

The input must be a ``Signal`` (a port of this component): building the tree straight from an
XNOR expression makes Yosys' netlist blow up (STYLE.md: 56 s / 1.6 GB against 3.6 s / 131 MB for
a 128x128 layer), so the caller assigns its XNOR result to a signal first.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, ceil_log2

__all__ = ["Popcount", "register_levels"]


def register_levels(levels, stages):
    """Tree levels after which a register sits, for ``stages`` registers over ``levels`` levels.

    Level ``l`` (1..levels) is the output of the ``l``-th row of adders; stages beyond the
    number of levels sit on the output (level ``levels``). Returns a sorted list with repeats.
    """
    spread = min(stages, levels)
    placed = [-(-(s + 1) * levels // spread) for s in range(spread)]
    return placed + [levels] * (stages - spread)


class Popcount(wiring.Component):
    """Number of ones in ``bits``, through a balanced, optionally pipelined adder tree.

    ``count = sum(bits[i] for i in range(width))``; for ``width`` bits it lies in
    ``0..width``.

    Parameters
    ----------
    width : int
        Number of input bits, ``>= 1``.
    stages : int
        Register stages, ``>= 0``; ``0`` is purely combinational. The latency in enabled
        cycles equals ``stages``.

    Members
    -------
    bits : In(width)
        Bits to count.
    en : In(1)
        Clock enable of every pipeline register (hold when low); unused when ``stages == 0``.
    count : Out(bits_for(width))
        The count of the ``bits`` presented ``stages`` enabled cycles earlier.

    Raises
    ------
    ValueError
        If ``width`` is not a positive integer or ``stages`` not a non-negative integer.
    """

    def __init__(self, width, stages=0):
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        if not isinstance(stages, int) or isinstance(stages, bool) or stages < 0:
            raise ValueError(f"stages must be a non-negative integer, not {stages!r}")
        self.width = width
        self.stages = stages
        groups = width // 3 + width % 3
        self.levels = 1 + ceil_log2(groups) if width >= 3 else ceil_log2(width)
        super().__init__({"bits": In(width), "en": In(1), "count": Out(bits_for(width))})

    @property
    def latency(self):
        """Enabled cycles from ``bits`` to ``count``."""
        return self.stages

    def elaborate(self, platform):
        m = Module()
        regs_after = register_levels(self.levels, self.stages)

        def register(values, level):
            out = []
            for i, (v, maxval) in enumerate(values):
                r = Signal(bits_for(maxval), name=f"pc_l{level}_{i}")
                with m.If(self.en):
                    m.d.sync += r.eq(v)
                out.append((r, maxval))
            return out

        # Each node is (value, maximum value it can take) so widths stay minimal.
        nodes = [(self.bits[i], 1) for i in range(self.width)]
        for _ in range(regs_after.count(0)):
            nodes = register(nodes, 0)
        first = 1
        if self.width >= 3:
            # Level 1: full adders over groups of three bits (sum, carry); leftovers pass.
            nxt = []
            for i in range(0, self.width - 2, 3):
                a, b, c = (nodes[i + j][0] for j in range(3))
                nxt.append((Cat(a ^ b ^ c, (a & b) | (c & (a ^ b))), 3))
            nodes = nxt + nodes[self.width - self.width % 3:]
            for _ in range(regs_after.count(1)):
                nodes = register(nodes, 1)
            first = 2
        for level in range(first, self.levels + 1):
            nxt = []
            for j in range(0, len(nodes) - 1, 2):
                (a, ma), (b, mb) = nodes[j], nodes[j + 1]
                # Expressions between register stages, no signal per adder: keeps the
                # netlist small (a signal per node made a 128x128 layer 1.7x slower).
                nxt.append((a + b, ma + mb))
            if len(nodes) % 2:
                nxt.append(nodes[-1])
            nodes = nxt
            for _ in range(regs_after.count(level)):
                nodes = register(nodes, level)
        (root, _), = nodes
        m.d.comb += self.count.eq(root)
        return m
