"""Row reader: convolution windows read from row memories, one window row per transfer.

A :class:`~bnnflow.hw.pixel_window.PixelWindow` sends a window a pixel a cycle, so it serves an
MVTU that spends at least ``kh * kw`` cycles on a window. A faster MVTU (``kh`` to ``kh * kw -
1`` cycles a window) got a window in flip-flops (:class:`~bnnflow.hw.window.SlidingWindow`).
This unit keeps the same ring of rows but reads a whole window row, ``kw`` pixels, per cycle:
window row ``a`` is the transfer holding window bits ``[a kw C, (a + 1) kw C)``, the chunks an
MVTU input memory takes when ``kw C`` divides ``SIMD`` (:mod:`bnnflow.hw.inbuf`).

Structure::

    i (pixel) --> bank (column mod kw): kw memories of R rows x ceil(W / kw) words of C bits
              --> kw read ports --> rotate by (window column mod kw) --> o (kw pixels)

* **Banks.** Column ``x`` of a row lives in bank ``x mod kw`` at word ``x // kw`` of the row's
  slot, so the ``kw`` columns ``jc .. jc + kw - 1`` of any window are in ``kw`` different banks
  and are read in one cycle: bank ``k`` reads word ``jc // kw + (k < jc mod kw)``. The
  pixel of window column ``b`` is bank ``(jc + b) mod kw``'s, so the output rotates the banks'
  words by ``jc mod kw`` (registered beside the read).
* **Ring, writer and window ready** as in :class:`~bnnflow.hw.pixel_window.PixelWindow`
  (``R = ring_rows``, ``lag``, a window's first row read once the writer is past its
  bottom-right pixel); only the reader's step differs: a row a cycle, ``kh`` per window.
* **Timing.** The first row of a window leaves 2 edges after the transfer of the pixel that
  completes it, the last ``kh + 1`` (:attr:`RowWindow.latency`).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .pixel_window import ring_advance, ring_geometry

__all__ = ["RowWindow"]


class RowWindow(wiring.Component):
    """Convolution windows of a channels-last pixel stream, a window row per transfer.

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
    o : Out(stream.Signature(kw * C))
        ``kh`` transfers per window: window row ``a`` (input row ``i s + a`` of output position
        ``(i, j)``, columns ``j s .. j s + kw - 1``) in transfer ``a``, column ``b`` at bits
        ``[b C, (b + 1) C)``; ``Ho * Wo`` windows per map, rows top to bottom.

    Attributes
    ----------
    windows : int
        ``Ho * Wo``, windows per map.
    chunks : int
        ``kh``, transfers per window.
    rows : int
        Rows of the ring (:func:`~bnnflow.hw.pixel_window.ring_rows`).
    line_bits : int
        Bits of the ``kw`` bank memories, ``rows * kw * ceil(W / kw) * C``.
    latency : int
        ``kh + 1``: edges from the transfer of the pixel completing a window to the transfer of
        the window's last row (reader idle, ``o.ready`` high).

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
        self.chunks = kh
        self.line_bits = self.rows * kw * -(-w // kw) * c
        self.latency = kh + 1
        super().__init__({"i": In(stream.Signature(c)), "o": Out(stream.Signature(kw * c))})

    def elaborate(self, platform):
        m = Module()
        h, w, c = self.in_shape
        kh, kw = self.kernel
        s, rows = self.stride, self.rows
        ho, wo = self.out_shape
        words = -(-w // kw)
        depth = rows * words
        banks = [Memory(shape=c, depth=depth, init=[], attrs={"no_rw_check": 1})
                 for _ in range(kw)]
        for k, bank in enumerate(banks):
            m.submodules[f"bank{k}"] = bank
        wrs = [bank.write_port() for bank in banks]
        rds = [bank.read_port() for bank in banks]

        advance = ring_advance(depth, words)

        # Writer: row after row, column x into bank x mod kw at word x // kw of the slot.
        lag = Signal(range(-h - 1, rows + 2), name="lag")
        wbase = Signal(range(depth), name="wbase")
        wcol = Signal(range(w), name="wcol")
        wbank = Signal(range(kw), name="wbank")
        wword = Signal(range(words), name="wword")
        take = Signal()
        m.d.comb += [self.i.ready.eq(lag < rows), take.eq(self.i.valid & self.i.ready)]
        for k, wr in enumerate(wrs):
            m.d.comb += [wr.addr.eq(wbase + wword), wr.data.eq(self.i.payload),
                         wr.en.eq(take & (wbank == k))]
        row_done = take & (wcol == w - 1)
        with m.If(take):
            with m.If(wcol == w - 1):
                m.d.sync += [wcol.eq(0), wbank.eq(0), wword.eq(0), wbase.eq(advance(wbase, 1))]
            with m.Else():
                m.d.sync += [wcol.eq(wcol + 1), wbank.eq(Mux(wbank == kw - 1, 0, wbank + 1)),
                             wword.eq(wword + (wbank == kw - 1))]

        # Reader: window (oi, jc / s), row a; rbase is the slot of row top + a; jc = jq kw + jr.
        top = Signal(range(depth), name="top")
        rbase = Signal(range(depth), name="rbase")
        oi = Signal(range(ho), name="out_row")
        jc = Signal(range((wo - 1) * s + 1), name="col_base")
        jq = Signal(range(words), name="col_word")
        jr = Signal(range(kw), name="col_bank")
        jr_read = Signal(range(kw), name="col_bank_read")
        a = Signal(range(kh), name="a")
        first_ok = (lag > kh - 1) | ((lag == kh - 1) & (wcol >= jc + kw))
        readable = Signal()
        en = Signal()
        release = Signal(range(rows + 1))
        m.d.comb += [readable.eq((a != 0) | first_ok), en.eq(~self.o.valid | self.o.ready)]
        for k, rd in enumerate(rds):
            m.d.comb += [rd.en.eq(en), rd.addr.eq(rbase + jq + (k < jr))]
        # Window column b is bank (jr + b) mod kw's word, jr as it was when the banks read.
        with m.Switch(jr_read):
            for r in range(kw):
                with m.Case(r):
                    m.d.comb += self.o.payload.eq(Cat(*(rds[(r + b) % kw].data
                                                        for b in range(kw))))
        with m.If(en):
            m.d.sync += [self.o.valid.eq(readable), jr_read.eq(jr)]
        step_q, step_r = divmod(s, kw)
        carry = jr + step_r >= kw
        with m.If(en & readable):
            with m.If(a != kh - 1):
                m.d.sync += [a.eq(a + 1), rbase.eq(advance(rbase, 1))]
            with m.Elif(jc != (wo - 1) * s):
                m.d.sync += [a.eq(0), jc.eq(jc + s), rbase.eq(top),
                             jq.eq(jq + step_q + carry),
                             jr.eq(Mux(carry, jr + step_r - kw, jr + step_r))]
            with m.Elif(oi != ho - 1):
                m.d.comb += release.eq(s)
                m.d.sync += [a.eq(0), jc.eq(0), jq.eq(0), jr.eq(0), oi.eq(oi + 1),
                             top.eq(advance(top, s)), rbase.eq(advance(top, s))]
            with m.Else():
                # The map's last window: the top row moves on to the next map's first row.
                m.d.comb += release.eq(h - (ho - 1) * s)
                m.d.sync += [a.eq(0), jc.eq(0), jq.eq(0), jr.eq(0), oi.eq(0),
                             top.eq(advance(top, h - (ho - 1) * s)),
                             rbase.eq(advance(top, h - (ho - 1) * s))]
        m.d.sync += lag.eq(lag + row_done - release)
        return m

