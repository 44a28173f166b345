"""Window reader: convolution windows read from row memories, one pixel per transfer.

The :class:`~bnnflow.hw.window.SlidingWindow` holds a whole window of ``K = kh * kw * C`` bits
in flip-flops and sends it over a ``K``-bit bus into a queue; on CNV's large layers (``K`` up to
2304) those registers were most of the design's flip-flops. This unit keeps the map's recent
rows in one memory and reads each window out of it a pixel (``C`` bits) per cycle, in
``(kh, kw)`` order, so window pixel ``a * kw + b`` is the transfer holding window bits ``[(a * kw +
b) C, (a * kw + b + 1) C)``: the chunks an MVTU input memory takes
(:mod:`bnnflow.hw.inbuf`, chunk ``C`` dividing ``SIMD``). FINN's sliding-window generator
works the same way. No window register and no window queue: the ring of rows is the queue.

Structure::

    i (pixel) --> ring memory: R rows of W words of C bits --> read port --> o (pixel)
                  written row after row            read window by window, kh x kw words each

* **Ring of rows.** Row ``g`` of the stream (counted over maps) lives in slot ``g mod R``.
  ``lag`` counts rows from the top row of the window being read to the row being written. A
  pixel is taken while ``lag < R`` (its slot holds no row still to be read), so the writer runs
  up to ``R - kh`` rows ahead of the reader. ``R = max(2 kh + d, kh + s)`` (``d`` the rows
  past the last window, ``s`` the stride): the writer can take the next output row's rows,
  and at the end of a map the next map's first ``kh`` rows, while the reader still reads.
* **Window ready.** A window's first pixel is read once the writer is past its bottom-right
  pixel: ``lag > kh - 1``, or ``lag == kh - 1`` and the writer's column past the window's.
  The other ``kh * kw - 1`` pixels follow a cycle each; the writer never writes a row in
  ``top .. top + kh - 1``, so reads and writes never meet on an address.
* **Output.** The memory's synchronous read port is the output register: the read enable is
  ``~o.valid | o.ready`` and ``o.valid`` is loaded with whether a pixel was read, so windows
  stream at one pixel a cycle while taken.
* **Timing.** The first pixel of a window leaves 2 edges after the transfer of the pixel that
  completes it, the last ``kh * kw + 1`` (:attr:`PixelWindow.latency`). ``i.ready`` and
  ``o.valid`` are registers' functions only.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .window import check_shape

__all__ = ["PixelWindow", "ring_rows", "ring_geometry", "ring_advance"]


def ring_rows(in_shape, kernel, stride=1):
    """Rows of the ring memory of a :class:`PixelWindow`: ``max(2 kh + d, kh + s)``, ``d`` the
    rows of an ``H``-row map past its last window."""
    h, kh, s = in_shape[0], kernel[0], stride
    dropped = h - ((h - kh) // s) * s - kh
    return max(2 * kh + dropped, kh + s)


def ring_geometry(unit, in_shape, kernel, stride):
    """Check the shapes of a window reader over a ring of rows (:class:`PixelWindow`,
    :class:`~bnnflow.hw.row_window.RowWindow`) and set what they share on ``unit``:
    ``in_shape``, ``kernel``, ``stride``, ``out_shape``, ``windows`` and ``rows``."""
    in_shape, kernel = tuple(in_shape), tuple(kernel)
    check_shape(in_shape, kernel, stride)
    unit.in_shape, unit.kernel, unit.stride = in_shape, kernel, stride
    (h, w, _), (kh, kw) = in_shape, kernel
    unit.out_shape = ((h - kh) // stride + 1, (w - kw) // stride + 1)
    unit.windows = unit.out_shape[0] * unit.out_shape[1]
    unit.rows = ring_rows(in_shape, kernel, stride)


def ring_advance(depth, row_words):
    """``advance(base, nrows)``: a ring address ``base`` moved ``nrows`` rows of ``row_words``
    words on in a ring of ``depth`` words (``nrows`` no more than its rows)."""
    def advance(base, nrows):
        step = nrows * row_words
        return Mux(base >= depth - step, base + step - depth, base + step)
    return advance


class PixelWindow(wiring.Component):
    """Convolution windows of a channels-last pixel stream, a pixel per transfer.

    Parameters
    ----------
    in_shape : (H, W, C)
    kernel : (kh, kw)
    stride : int
        ``s``, the step between windows along both axes.

    Members
    -------
    i : In(stream.Signature(C))
        One pixel per transfer: channel ``ch`` at bit ``ch``; ``H * W`` transfers per map.
    o : Out(stream.Signature(C))
        ``kh * kw`` transfers per window, pixel ``(a, b)`` of the window (input ``(i s + a,
        j s + b)`` of output position ``(i, j)``) in transfer ``a * kw + b``; ``Ho * Wo``
        windows per map, rows top to bottom.

    Attributes
    ----------
    windows : int
        ``Ho * Wo``, windows per map.
    chunks : int
        ``kh * kw``, transfers per window.
    rows : int
        Rows of the ring memory (:func:`ring_rows`).
    line_bits : int
        Bits of the ring memory, ``rows * W * C``.
    latency : int
        ``kh * kw + 1``: edges from the transfer of the pixel completing a window to the
        transfer of the window's last pixel (reader idle, ``o.ready`` high).

    Raises
    ------
    ValueError
        A shape, kernel or stride that is not positive integers, or a kernel larger than the
        map.
    """

    def __init__(self, in_shape, kernel, stride=1):
        ring_geometry(self, in_shape, kernel, stride)
        _, w, c = self.in_shape
        kh, kw = self.kernel
        self.chunks = kh * kw
        self.line_bits = self.rows * w * c
        self.latency = self.chunks + 1
        super().__init__({"i": In(stream.Signature(c)), "o": Out(stream.Signature(c))})

    def elaborate(self, platform):
        m = Module()
        h, w, c = self.in_shape
        kh, kw = self.kernel
        s, rows = self.stride, self.rows
        ho, wo = self.out_shape
        depth = rows * w
        m.submodules.ring = ring = Memory(shape=c, depth=depth, init=[], attrs={"no_rw_check": 1})
        wr = ring.write_port()
        rd = ring.read_port()

        advance = ring_advance(depth, w)

        # Writer: row after row into the ring.
        lag = Signal(range(-h - 1, rows + 2), name="lag")
        wbase = Signal(range(depth), name="wbase")
        wcol = Signal(range(w), name="wcol")
        take = Signal()
        m.d.comb += [self.i.ready.eq(lag < rows), take.eq(self.i.valid & self.i.ready),
                     wr.addr.eq(wbase + wcol), wr.data.eq(self.i.payload), wr.en.eq(take)]
        row_done = take & (wcol == w - 1)
        with m.If(take):
            m.d.sync += wcol.eq(Mux(wcol == w - 1, 0, wcol + 1))
            with m.If(wcol == w - 1):
                m.d.sync += wbase.eq(advance(wbase, 1))

        # Reader: window (oi, jc / s), pixel (a, b); rbase is the slot of row top + a.
        top = Signal(range(depth), name="top")
        rbase = Signal(range(depth), name="rbase")
        oi = Signal(range(ho), name="out_row")
        jc = Signal(range((wo - 1) * s + 1), name="col_base")
        a = Signal(range(kh), name="a")
        b = Signal(range(kw), name="b")
        started = (a != 0) | (b != 0)
        first_ok = (lag > kh - 1) | ((lag == kh - 1) & (wcol >= jc + kw))
        readable = Signal()
        en = Signal()
        release = Signal(range(rows + 1))
        m.d.comb += [readable.eq(started | first_ok), en.eq(~self.o.valid | self.o.ready),
                     rd.en.eq(en), rd.addr.eq(rbase + jc + b), self.o.payload.eq(rd.data)]
        with m.If(en):
            m.d.sync += self.o.valid.eq(readable)
        with m.If(en & readable):
            with m.If(b != kw - 1):
                m.d.sync += b.eq(b + 1)
            with m.Elif(a != kh - 1):
                m.d.sync += [b.eq(0), a.eq(a + 1), rbase.eq(advance(rbase, 1))]
            with m.Elif(jc != (wo - 1) * s):
                m.d.sync += [b.eq(0), a.eq(0), jc.eq(jc + s), rbase.eq(top)]
            with m.Elif(oi != ho - 1):
                m.d.comb += release.eq(s)
                m.d.sync += [b.eq(0), a.eq(0), jc.eq(0), oi.eq(oi + 1),
                             top.eq(advance(top, s)), rbase.eq(advance(top, s))]
            with m.Else():
                # The map's last window: the top row moves on to the next map's first row.
                m.d.comb += release.eq(h - (ho - 1) * s)
                m.d.sync += [b.eq(0), a.eq(0), jc.eq(0), oi.eq(0),
                             top.eq(advance(top, h - (ho - 1) * s)),
                             rbase.eq(advance(top, h - (ho - 1) * s))]
        m.d.sync += lag.eq(lag + row_done - release)
        return m
