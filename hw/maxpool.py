# amaranth: UnusedElaboratable=no
"""Max-pool unit: the OR over ``k x k`` windows (stride ``k``) of a binary pixel stream, or the
per-element maximum of ``n``-bit activation levels.

Max-pool acts on activations after the threshold, so the maximum of a window is the OR of its
bits, or for ``n``-bit levels the largest level (:func:`bnnflow.model.conventions.maxpool_or`;
element ``c`` of a pixel at bits ``[c * n, (c + 1) * n)``, compared as unsigned numbers). For
an ``H x W x C`` map the unit takes one pixel of ``C`` elements per transfer, rows top to
bottom, and emits the ``Ho x Wo`` pooled pixels in the same order, ``Ho = H // k`` (rows and
columns past the last whole window are read and dropped, as the golden model drops them).

* **Partial ORs.** The pixels of a window row are ORed into one ``C``-bit register; at the
  window's last column that row's OR is combined with the partial OR of the rows above,
  kept per output column in a line memory of ``Wo`` words of ``C`` bits
  (:class:`amaranth.lib.memory.Memory`), or, at the window's last row, sent out.
* **Flow and timing.** A pixel that completes no pooled pixel is taken whenever it comes; one
  that completes one waits until the output register is free or being read. The pooled pixel
  leaves on the edge after the pixel completing it was accepted (latency 1).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["MaxPool"]


class MaxPool(wiring.Component):
    """Max-pool (OR of bits, maximum of levels) over ``k x k`` windows with stride ``k``.

    Parameters
    ----------
    in_shape : (H, W, C)
    window : int
        ``k``; the stride is ``k`` too.
    bits : int
        Bits per element: 1 (the OR), or ``n`` for ``n``-bit levels (element ``c`` at bits
        ``[c * n, (c + 1) * n)``), pooled by a per-element maximum.

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
    latency : int
        1 (edges from the pixel completing a pooled pixel to its transfer, ``o.ready`` high).
    cycles : int
        ``H * W``: cycles per map, one input pixel a cycle (the unit interface of
        :mod:`bnnflow.hw.units`, as ``accept_wait`` 0, ``out_width`` ``Ho * Wo * C`` and
        ``lane_width`` 1).

    Raises
    ------
    ValueError
        Shapes that are not positive integers, or a window larger than the map.
    """

    latency = 1
    accept_wait = 0

    def __init__(self, in_shape, window, bits=1):
        in_shape = tuple(in_shape)
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
            raise ValueError(f"bits must be an integer in 1..8, not {bits!r}")
        self.bits = bits
        if (len(in_shape) != 3 or not all(isinstance(v, int) and not isinstance(v, bool)
                                          and v > 0 for v in (*in_shape, window))):
            raise ValueError(f"in_shape must be (H, W, C) and window a positive integer, not "
                             f"{in_shape!r} and {window!r}")
        if window > min(in_shape[:2]):
            raise ValueError(f"pool window {window} does not fit a {in_shape[0]}x{in_shape[1]} "
                             f"map")
        self.in_shape, self.window = in_shape, window
        h, w, c = in_shape
        self.out_shape = (h // window, w // window, c)
        self.outputs = self.out_shape[0] * self.out_shape[1]
        self.cycles = h * w
        self.out_width = self.outputs * c * bits
        self.lane_width = bits
        super().__init__({"i": In(stream.Signature(c * bits)),
                          "o": Out(stream.Signature(c * bits))})

    @classmethod
    def from_layer(cls, layer, fold, options):
        """The unit of a ``maxpool2d`` layer (:data:`bnnflow.hw.units.UNITS`); the folding
        does not apply to it.

        Raises
        ------
        ValueError
            A stride other than the window (overlapping windows have no hardware yet).
        """
        if layer.stride != layer.window:
            raise ValueError(f"{layer.name}: the max-pool unit needs stride == window, not "
                             f"stride {layer.stride} with window {layer.window} (overlapping "
                             f"pools have no hardware yet: train or export the pool with its "
                             f"stride equal to its window)")
        return cls(layer.in_shape, layer.window, layer.bits)

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
        """The map shapes and the partial-OR line memory."""
        return {"in_shape": list(self.in_shape), "out_shape": list(self.out_shape),
                "window": self.window,
                "line_bits": self.out_shape[1] * self.in_shape[2] * self.bits}

    def _max(self, a, b):
        """Per-element maximum of two pixels (the OR for bits; 0 is the least level)."""
        n = self.bits
        if n == 1:
            return a | b
        c = self.in_shape[2]
        return Cat(*(Mux(a[e * n:(e + 1) * n] > b[e * n:(e + 1) * n], a[e * n:(e + 1) * n],
                         b[e * n:(e + 1) * n]) for e in range(c)))

    def elaborate(self, platform):
        m = Module()
        h, w, c = self.in_shape
        k = self.window
        ho, wo, _ = self.out_shape
        # Position: row r = wrow * k + rsub, column col = wcol * k + csub.
        row, col = Signal(range(h), name="row"), Signal(range(w), name="col")
        rsub, csub = Signal(range(k), name="rsub"), Signal(range(k), name="csub")
        wcol = Signal(range(w // k + 1), name="wcol")
        take = Signal()
        m.d.comb += take.eq(self.i.valid & self.i.ready)
        last_col, last_row = col == w - 1, row == h - 1
        col_end = csub == k - 1
        inside = (row < ho * k) & (col < wo * k)
        next_wcol = Mux(take & col_end, Mux(last_col, 0, wcol + 1),
                        Mux(take & last_col, 0, wcol))

        n = self.bits
        acc = Signal(c * n, name="acc")  # max (OR) of this row's pixels in the window
        row_or = Mux(csub == 0, self.i.payload, self._max(acc, self.i.payload))
        m.submodules.partial = partial = Memory(shape=c * n, depth=max(wo, 1), init=[])
        wr = partial.write_port()
        rd = partial.read_port(transparent_for=(wr,))
        above = Mux(rsub == 0, 0, rd.data)
        window_or = self._max(above, row_or)
        completes = inside & col_end & (rsub == k - 1)
        m.d.comb += [rd.addr.eq(next_wcol), wr.addr.eq(wcol), wr.data.eq(window_or),
                     wr.en.eq(take & inside & col_end & (rsub != k - 1))]
        with m.If(take):
            m.d.sync += [acc.eq(row_or), wcol.eq(next_wcol),
                         col.eq(Mux(last_col, 0, col + 1)),
                         csub.eq(Mux(last_col | col_end, 0, csub + 1))]
            with m.If(last_col):
                m.d.sync += [row.eq(Mux(last_row, 0, row + 1)),
                             rsub.eq(Mux(last_row | (rsub == k - 1), 0, rsub + 1))]

        m.d.comb += self.i.ready.eq(~completes | ~self.o.valid | self.o.ready)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(take & completes):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(window_or)]
        return m
