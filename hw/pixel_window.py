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

* **Ring, writer, window ready and output** as :mod:`bnnflow.hw.ring` builds them for both
  window readers (:class:`~bnnflow.hw.ring.RingWalk`); a row is ``W`` words of the one memory.
* **Timing.** The first pixel of a window leaves 2 edges after the transfer of the pixel that
  completes it, the last ``kh * kw + 1`` (:attr:`PixelWindow.latency`). ``i.ready`` and
  ``o.valid`` are registers' functions only.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .ring import RingWalk, ring_geometry

__all__ = ["PixelWindow"]


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
        Rows of the ring memory (:func:`~bnnflow.hw.ring.ring_rows`).
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
        _, w, c = self.in_shape
        kh, kw = self.kernel
        ring = RingWalk(self, w)
        m.submodules.ring = mem = Memory(shape=c, depth=ring.depth, init=[],
                                         attrs={"no_rw_check": 1})
        wr = mem.write_port()
        rd = mem.read_port()
        ring.write(m, self.i)
        m.d.comb += [wr.addr.eq(ring.wbase + ring.wcol), wr.data.eq(self.i.payload),
                     wr.en.eq(ring.take)]

        # Reader: window (oi, jc / s), pixel (a, b); rbase is the slot of row top + a.
        a = Signal(range(kh), name="a")
        b = Signal(range(kw), name="b")
        m.d.comb += [rd.en.eq(ring.en), rd.addr.eq(ring.rbase + ring.jc + b),
                     self.o.payload.eq(rd.data)]
        ring.walk(m, self.o, started=(a != 0) | (b != 0), restart=[b.eq(0), a.eq(0)],
                  inner=[(b != kw - 1, [b.eq(b + 1)]),
                         (a != kh - 1, [b.eq(0), a.eq(a + 1), ring.next_row()])])
        return m
