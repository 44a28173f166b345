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

**Bit-sliced form** (for simulation speed). Which bits share a full adder, and which counts
are added pairwise, is arbitrary; so the full adders take *contiguous slices* (``a =
bits[0:g]``, ``b = bits[g:2g]``, ``c = bits[2g:3g]``, ``g = width // 3``: ``s = a ^ b ^ c``,
carry = majority, as whole-vector operations) and the pairwise levels add the first half of the
counts to the second half. Pairwise levels whose operands have fewer than ``plane_bits`` bits
(per style) are bit-sliced too: the counts are stored as bit planes (plane ``j`` is one vector
holding bit ``j`` of every count) and added with whole-vector ripple-carry logic. A Verilated
model then does a few wide word operations per level instead of a few operations per bit or
per count (hw/README.md: 3.3x the cycles/s on sfc with the generic style, 4.3x with keep).
Each bit-sliced level is one ``Signal`` per plane, so the netlist stays linear in ``width``.
The other levels use one ``+`` per pair of counts, which Yosys maps to carry chains.

**Styles** (``style``; the function, ports and latency are the same; figures for a fully
parallel 64x64 MVTU, pipeline 2, ``python -m bnnflow.hw.bench synth 64 64 --pipeline 2``, in
hw/README.md):

* ``"generic"`` (default): only the full-adder level is bit-sliced; Yosys merges the ``+``
  levels into one ``$macc`` cell. Synthesizes like the per-bit tree it replaced (iCE40 3941
  LUT4 against 3961, ECP5 5796 LUT4 + 411 CCU2C against 5812 + 411).
* ``"keep"``: levels with operands below 4 bits bit-sliced, then each ``+`` level assigned to
  one ``Signal`` with the ``keep`` attribute, which stops the ``$macc`` merge. iCE40: 3768
  LUT4, 5024 placed logic cells instead of 5983, Fmax 113.7 instead of 100.4 MHz. ECP5: 3282
  LUT4 + 1179 CCU2C (5796 + 411 generic), but as many placed ``TRELLIS_COMB`` (7150 against
  7104) and Fmax 112.4 instead of 122.2 MHz.

The input must be a ``Signal`` (a port of this component): building the tree straight from an
XNOR expression makes Yosys' netlist blow up (STYLE.md: 56 s / 1.6 GB against 3.6 s / 131 MB for
a 128x128 layer), so the caller assigns its XNOR result to a signal first.
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, ceil_log2

__all__ = ["STYLES", "DEFAULT_STYLE", "Popcount", "register_levels"]

#: Per style: pairwise levels whose operands have fewer bits than ``plane_bits`` are
#: bit-sliced; ``keep``: each ``+`` level is a ``Signal`` with the ``keep`` attribute.
STYLES = {
    "generic": {"plane_bits": 2, "keep": False},
    "keep": {"plane_bits": 4, "keep": True},
}

#: The style designs use unless told otherwise (:class:`bnnflow.hw.mvtu.MVTU`,
#: :class:`bnnflow.hw.top.BnnTop`, :func:`bnnflow.hw.verilog.generate`): one default, so the
#: Verilog that is simulated is the Verilog that is synthesized.
DEFAULT_STYLE = "keep"


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
    style : str
        One of :data:`STYLES` (default ``"generic"``): how the adder levels are presented to
        synthesis (module docstring). Same function, ports and latency for every style.

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
        If ``width`` is not a positive integer, ``stages`` not a non-negative integer or
        ``style`` not one of :data:`STYLES`.
    """

    def __init__(self, width, stages=0, *, style="generic"):
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        if not isinstance(stages, int) or isinstance(stages, bool) or stages < 0:
            raise ValueError(f"stages must be a non-negative integer, not {stages!r}")
        if not isinstance(style, str) or style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(map(repr, STYLES))}, "
                             f"not {style!r}")
        self.width = width
        self.stages = stages
        self.style = style
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

        def wire(value, name):
            sig = Signal(len(value), name=name)
            m.d.comb += sig.eq(value)
            return sig

        def register(value, name, level):
            for k in range(regs_after.count(level)):
                reg = Signal(len(value), name=f"{name}_r{k}" if k else name)
                with m.If(self.en):
                    m.d.sync += reg.eq(value)
                value = reg
            return value

        # Bit-sliced state: planes[j] holds bit j of every count; maxes[i] bounds count i.
        planes = [register(self.bits, "pc_l0_p0", 0)]
        maxes = [1] * self.width
        level = 0
        if self.width >= 3:
            # Level 1: full adders over three contiguous slices; leftover bits pass through.
            level = 1
            g, rest = self.width // 3, self.width % 3
            bits = planes[0]
            a, b, c = bits[:g], bits[g:2 * g], bits[2 * g:3 * g]
            ab = wire(a ^ b, "pc_l1_ab")
            s = ab ^ c
            carry = (a & b) | (c & ab)
            if rest:
                s = Cat(s, bits[3 * g:])
                carry = Cat(carry, Const(0, rest))
            planes = [wire(s, "pc_l1_p0"), wire(carry, "pc_l1_p1")]
            maxes = [3] * g + [1] * rest
            planes = [register(p, f"pc_l1_q{j}", 1) for j, p in enumerate(planes)]
        plane_bits, keep = STYLES[self.style]["plane_bits"], STYLES[self.style]["keep"]
        while level < self.levels and len(planes) < plane_bits:
            # A bit-sliced pairwise level: counts [0:h] + counts [h:2h], the odd one passes.
            level += 1
            n = len(maxes)
            h = n // 2
            out, carry = [], None
            for j, p in enumerate(planes):
                x, y = p[:h], p[h:2 * h]
                if carry is None:
                    out.append(x ^ y)
                    carry = wire(x & y, f"pc_l{level}_c{j}")
                else:
                    t = wire(x ^ y, f"pc_l{level}_t{j}")
                    out.append(t ^ carry)
                    carry = wire((x & y) | (t & carry), f"pc_l{level}_c{j}")
            out.append(carry)
            if n % 2:
                out = [Cat(o, planes[j][n - 1] if j < len(planes) else Const(0, 1))
                       for j, o in enumerate(out)]
            maxes = [maxes[i] + maxes[h + i] for i in range(h)] + maxes[2 * h:]
            width = bits_for(max(maxes))
            planes = [register(wire(o, f"pc_l{level}_p{j}"), f"pc_l{level}_q{j}", level)
                      for j, o in enumerate(out[:width])]
        # Pairwise levels of "+": each node is (value, maximum value it can take).
        nodes = [(Cat(p[i] for p in planes)[:bits_for(mx)], mx) for i, mx in enumerate(maxes)]
        while level < self.levels:
            level += 1
            n = len(nodes)
            h = n // 2
            # Expressions between register stages, no signal per adder: keeps the netlist
            # small (a signal per node made a 128x128 layer 1.7x slower).
            nxt = [(nodes[i][0] + nodes[h + i][0], nodes[i][1] + nodes[h + i][1])
                   for i in range(h)] + nodes[2 * h:]
            regs = regs_after.count(level)
            if keep or regs:
                sig = Signal(sum(bits_for(mx) for _, mx in nxt), name=f"pc_l{level}",
                             attrs={"keep": 1} if keep else {})
                m.d.comb += sig.eq(Cat(v for v, _ in nxt))
                sig = register(sig, f"pc_l{level}_r" if regs else f"pc_l{level}", level)
                nodes, pos = [], 0
                for _, mx in nxt:
                    nodes.append((sig[pos:pos + bits_for(mx)], mx))
                    pos += bits_for(mx)
            else:
                nodes = nxt
        (root, _), = nodes
        m.d.comb += self.count.eq(root)
        return m
