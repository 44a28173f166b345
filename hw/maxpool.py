# amaranth: UnusedElaboratable=no
"""Max-pool unit: the OR over ``k x k`` windows (stride ``s <= k``) of a binary pixel stream, or
the per-element maximum of ``n``-bit activation levels.

Max-pool acts on activations after the threshold, so the maximum of a window is the OR of its
bits, or for ``n``-bit levels the largest level (:func:`bnnflow.model.conventions.maxpool_or`;
element ``c`` of a pixel at bits ``[c * n, (c + 1) * n)``, compared as unsigned numbers). For
an ``H x W x C`` map the unit takes one pixel of ``C`` elements per transfer, rows top to
bottom, and emits the ``Ho x Wo`` pooled pixels in the same order, ``Ho = (H - k) // s + 1``
(rows and columns past the last whole window are read and dropped, as the golden model drops
them).

* **Separable partial maxima.** The maximum of a window is the maximum over its ``k`` rows of
  the maximum over its ``k`` columns. Windows start every ``s`` columns and span ``k``, so at
  most ``P = ceil(k / s)`` of them are open at any pixel (``P = 1`` without overlap): the
  pixels of a row are pooled into ``P`` ``C``-element registers, window ``j`` in register
  ``j mod P``. At a window's last column that row's maximum is combined with the partial
  maximum of the rows above, kept per output column in ``P`` line memories of ``Wo`` words
  (:class:`amaranth.lib.memory.Memory`; output row ``i`` in memory ``i mod P``), and, at the
  window's last row, sent out. A pixel completes at most one row window and a row at most one
  window of rows, so one pooled pixel leaves per pixel at most.
* **Flow and timing.** A pixel that completes no pooled pixel is taken whenever it comes; one
  that completes one waits until the output register is free or being read. The pooled pixel
  leaves on the edge after the pixel completing it was accepted (latency 1).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .folding import is_int

__all__ = ["MaxPool"]


class _Windows:
    """The windows of one axis (``k`` long, every ``s``, ``count`` of them) open at the
    position ``pos``: ``P = ceil(k / s)`` slots of an open flag and a phase (0 at a window's
    first position, ``k - 1`` at its last), window ``j`` in slot ``j mod P``. The registers
    describe the current position; :meth:`advance` moves them one position on, :meth:`restart`
    to position 0."""

    def __init__(self, m, name, k, s, count, pos):
        self.m, self.k, self.s, self.count, self.pos = m, k, s, count, pos
        self.slots = p = -(-k // s)
        self.open = [Signal(name=f"{name}_open{a}", init=int(a == 0)) for a in range(p)]
        self.phase = [Signal(range(k), name=f"{name}_phase{a}") for a in range(p)]
        # The slot of the next window to start; the last one started is the one before it.
        self.slot = Signal(range(max(p, 2)), name=f"{name}_slot", init=1 % p)

    def first(self, a):
        return self.phase[a] == 0

    def last(self, a):
        return self.open[a] & (self.phase[a] == self.k - 1)

    def advance(self):
        """Next position: open windows move a phase on or close after their last; a window
        starts ``s`` positions after the one before (whose phase is then ``s - 1``), until
        ``count`` have started. A closed slot's phase runs on unused until its next start."""
        m, p = self.m, self.slots
        latest = self.phase[0]
        for a in range(1, p):
            latest = Mux(self.slot == (a + 1) % p, self.phase[a], latest)
        starts = (latest == self.s - 1) & (self.pos < (self.count - 1) * self.s)
        for a in range(p):
            m.d.sync += [self.open[a].eq(self.open[a] & (self.phase[a] != self.k - 1)),
                         self.phase[a].eq(self.phase[a] + 1)]
            with m.If(starts & (self.slot == a)):
                m.d.sync += [self.open[a].eq(1), self.phase[a].eq(0)]
        if p > 1:
            with m.If(starts):
                m.d.sync += self.slot.eq(Mux(self.slot == p - 1, 0, self.slot + 1))

    def restart(self):
        """Position 0: window 0 open in slot 0."""
        m = self.m
        if self.slots > 1:
            m.d.sync += self.slot.eq(1)
        for a in range(self.slots):
            m.d.sync += [self.open[a].eq(int(a == 0)), self.phase[a].eq(0)]


def _check(in_shape, window, stride, bits):
    if not is_int(bits) or not 1 <= bits <= 8:
        raise ValueError(f"bits must be an integer in 1..8, not {bits!r}")
    if len(in_shape) != 3 or not all(is_int(v) and v > 0 for v in (*in_shape, window)):
        raise ValueError(f"in_shape must be (H, W, C) and window a positive integer, not "
                         f"{in_shape!r} and {window!r}")
    if window > min(in_shape[:2]):
        raise ValueError(f"pool window {window} does not fit a {in_shape[0]}x{in_shape[1]} "
                         f"map")
    if not is_int(stride) or not 1 <= stride <= window:
        raise ValueError(f"pool stride must be an integer in 1..{window} (the window), not "
                         f"{stride!r}")


class MaxPool(wiring.Component):
    """Max-pool (OR of bits, maximum of levels) over ``k x k`` windows with stride ``s``.

    Parameters
    ----------
    in_shape : (H, W, C)
    window : int
        ``k``.
    bits : int
        Bits per element: 1 (the OR), or ``n`` for ``n``-bit levels (element ``c`` at bits
        ``[c * n, (c + 1) * n)``), pooled by a per-element maximum.
    stride : int or None
        ``s`` in ``1..k``; ``None`` means ``k`` (windows that do not overlap).

    Members
    -------
    i : In(stream.Signature(C * bits))
        One pixel per transfer, ``H * W`` per map.
    o : Out(stream.Signature(C * bits))
        One pooled pixel per transfer, ``Ho * Wo`` per map.

    Attributes
    ----------
    outputs : int
        ``Ho * Wo``.
    slots : int
        ``P = ceil(k / s)``: row registers and line memories (windows open at once).
    latency : int
        1 (edges from the pixel completing a pooled pixel to its transfer, ``o.ready`` high).
    cycles : int
        ``H * W``: cycles per map, one input pixel a cycle (the unit interface of
        :mod:`bnnflow.hw.units`, as ``accept_wait`` 0, ``out_width`` ``Ho * Wo * C`` and
        ``lane_width`` 1).

    Raises
    ------
    ValueError
        Shapes that are not positive integers, a window larger than the map, or a stride
        outside ``1..k``.
    """

    latency = 1
    accept_wait = 0

    def __init__(self, in_shape, window, bits=1, stride=None):
        in_shape = tuple(in_shape)
        stride = window if stride is None else stride
        _check(in_shape, window, stride, bits)
        self.in_shape, self.window, self.stride, self.bits = in_shape, window, stride, bits
        h, w, c = in_shape
        self.out_shape = ((h - window) // stride + 1, (w - window) // stride + 1, c)
        self.slots = -(-window // stride)
        self.outputs = self.out_shape[0] * self.out_shape[1]
        self.cycles = h * w
        self.out_width = self.outputs * c * bits
        self.lane_width = bits
        super().__init__({"i": In(stream.Signature(c * bits)),
                          "o": Out(stream.Signature(c * bits))})

    @classmethod
    def from_layer(cls, layer, fold, options):
        """The unit of a ``maxpool2d`` layer (:data:`bnnflow.hw.units.UNITS`); the folding
        does not apply to it."""
        return cls(layer.in_shape, layer.window, layer.bits, layer.stride)

    @staticmethod
    def out_chunk(layer, fold):
        """Always one pooled pixel (``C * bits`` bits) per transfer."""
        return layer.in_shape[2] * layer.bits

    @staticmethod
    def in_chunk(layer, fold):
        """Always one input pixel (``C * bits`` bits) per transfer."""
        return layer.in_shape[2] * layer.bits

    @staticmethod
    def takes_chunk(layer, fold, width):
        """Pixels only."""
        return width == layer.in_shape[2] * layer.bits

    def sidecar(self):
        """The map shapes, the stride and the partial-maximum line memories."""
        return {"in_shape": list(self.in_shape), "out_shape": list(self.out_shape),
                "window": self.window, "stride": self.stride,
                "line_bits": self.slots * self.out_shape[1] * self.in_shape[2] * self.bits}

    def _max(self, a, b):
        """Per-element maximum of two pixels (the OR for bits; 0 is the least level)."""
        n = self.bits
        if n == 1:
            return a | b
        c = self.in_shape[2]
        return Cat(*(Mux(a[e * n:(e + 1) * n] > b[e * n:(e + 1) * n], a[e * n:(e + 1) * n],
                         b[e * n:(e + 1) * n]) for e in range(c)))

    @staticmethod
    def _select(flags, values):
        """The value whose flag is set, where the result is only used when one is (the first
        value otherwise)."""
        out = values[0]
        for flag, value in zip(flags[1:], values[1:], strict=True):
            out = Mux(flag, value, out)
        return out

    def _row_windows(self, m, take, cols, width):
        """The row's pooling registers; ``(done, value)``: the pixel completes a row window,
        and that window's maximum over this row."""
        pixel = self.i.payload
        regs = [Signal(width, name=f"row_max{a}") for a in range(cols.slots)]
        pooled = [Mux(cols.first(a), pixel, self._max(reg, pixel)) for a, reg in enumerate(regs)]
        ends = [cols.last(a) for a in range(cols.slots)]
        with m.If(take):
            for a, reg in enumerate(regs):
                with m.If(cols.open[a]):
                    m.d.sync += reg.eq(pooled[a])
        return Cat(*ends).any(), self._select(ends, pooled)

    def elaborate(self, platform):
        m = Module()
        h, w, c = self.in_shape
        k, s, width = self.window, self.stride, c * self.bits
        ho, wo, _ = self.out_shape
        row, col = Signal(range(h), name="row"), Signal(range(w), name="col")
        cols, rows = _Windows(m, "col", k, s, wo, col), _Windows(m, "row", k, s, ho, row)
        jdone = Signal(range(wo + 1), name="jdone")    # the next row window to complete
        take = Signal()
        m.d.comb += take.eq(self.i.valid & self.i.ready)
        last_col, last_row = col == w - 1, row == h - 1
        done, row_max = self._row_windows(m, take, cols, width)
        next_j = Mux(take, Mux(last_col, 0, jdone + done), jdone)

        # Partial maxima of the rows above, per output column, output row i in memory i mod P.
        news, lasts = [], []
        for b in range(rows.slots):
            mem = Memory(shape=width, depth=max(wo, 1), init=[])
            m.submodules[f"partial{b}" if b else "partial"] = mem
            wr = mem.write_port()
            rd = mem.read_port(transparent_for=(wr,))
            new = Mux(rows.first(b), row_max, self._max(rd.data, row_max))
            m.d.comb += [rd.addr.eq(next_j), wr.addr.eq(jdone), wr.data.eq(new),
                         wr.en.eq(take & done & rows.open[b] & ~rows.last(b))]
            news.append(new)
            lasts.append(rows.last(b))
        completes = done & Cat(*lasts).any()
        pooled = self._select(lasts, news)

        with m.If(take):
            m.d.sync += [jdone.eq(next_j), col.eq(Mux(last_col, 0, col + 1))]
            with m.If(last_col):
                m.d.sync += row.eq(Mux(last_row, 0, row + 1))
                cols.restart()
                with m.If(last_row):
                    rows.restart()
                with m.Else():
                    rows.advance()
            with m.Else():
                cols.advance()

        m.d.comb += self.i.ready.eq(~completes | ~self.o.valid | self.o.ready)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(take & completes):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(pooled)]
        return m
