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
* **Ring, writer, window ready and output** as :mod:`bnnflow.hw.ring` builds them for both
  window readers (:class:`~bnnflow.hw.ring.RingWalk`); a row is ``ceil(W / kw)`` words of
  each bank, and the reader steps a row a cycle, ``kh`` per window.
* **Timing.** The first row of a window leaves 2 edges after the transfer of the pixel that
  completes it, the last ``kh + 1`` (:attr:`RowWindow.latency`).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .ring import RingWalk, ring_geometry

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
        Rows of the ring (:func:`~bnnflow.hw.ring.ring_rows`).
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
        _, w, c = self.in_shape
        kh, kw = self.kernel
        words = -(-w // kw)
        ring = RingWalk(self, words)
        banks = [Memory(shape=c, depth=ring.depth, init=[], attrs={"no_rw_check": 1})
                 for _ in range(kw)]
        for k, bank in enumerate(banks):
            m.submodules[f"bank{k}"] = bank
        wrs = [bank.write_port() for bank in banks]
        rds = [bank.read_port() for bank in banks]

        # Writer: column x into bank x mod kw at word x // kw of the row's slot.
        wbank = Signal(range(kw), name="wbank")
        wword = Signal(range(words), name="wword")
        ring.write(m, self.i, row_end=[wbank.eq(0), wword.eq(0)],
                   column=[wbank.eq(Mux(wbank == kw - 1, 0, wbank + 1)),
                           wword.eq(wword + (wbank == kw - 1))])
        for k, wr in enumerate(wrs):
            m.d.comb += [wr.addr.eq(ring.wbase + wword), wr.data.eq(self.i.payload),
                         wr.en.eq(ring.take & (wbank == k))]

        # Reader: window (oi, jc / s), row a; rbase is the slot of row top + a; jc = jq kw + jr.
        jq = Signal(range(words), name="col_word")
        jr = Signal(range(kw), name="col_bank")
        jr_read = Signal(range(kw), name="col_bank_read")
        a = Signal(range(kh), name="a")
        for k, rd in enumerate(rds):
            m.d.comb += [rd.en.eq(ring.en), rd.addr.eq(ring.rbase + jq + (k < jr))]
        # Window column b is bank (jr + b) mod kw's word, jr as it was when the banks read.
        with m.Switch(jr_read):
            for r in range(kw):
                with m.Case(r):
                    m.d.comb += self.o.payload.eq(Cat(*(rds[(r + b) % kw].data
                                                        for b in range(kw))))
        step_q, step_r = divmod(self.stride, kw)
        carry = jr + step_r >= kw
        ring.walk(m, self.o, started=a != 0, restart=[a.eq(0)], loaded=[jr_read.eq(jr)],
                  inner=[(a != kh - 1, [a.eq(a + 1), ring.next_row()])],
                  next_column=[jq.eq(jq + step_q + carry),
                               jr.eq(Mux(carry, jr + step_r - kw, jr + step_r))],
                  first_column=[jq.eq(0), jr.eq(0)])
        return m
