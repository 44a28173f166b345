"""Sliding-window unit: a channels-last pixel stream in, the convolution windows out.

For an ``H x W x C`` map and a ``kh x kw`` kernel (stride ``s``, no padding) the unit takes one
pixel of ``C`` bits per transfer, rows top to bottom, and emits, for each of the ``Ho * Wo``
output positions in the same order, the window of ``kh * kw * C`` bits in ``(kh, kw, C)`` order
(bit ``(a * kw + b) * C + ch`` = input ``(i s + a, j s + b, ch)``): the order of the conv
weights and of :func:`bnnflow.model.conventions.windows`. A padded conv builds this unit on its
padded map, behind a :class:`~bnnflow.hw.pad.PadMap` that sends the border (:mod:`bnnflow.hw.conv`).

Structure::

    i (pixel) --+--> column: kh pixels of column c, rows r-kh+1 .. r --> shift into window
                |      ^ line memory[c]: rows r-kh+1 .. r-1 (W words of (kh-1)*C bits)
                +------+ written back with rows r-kh+2 .. r
    window registers (kh x kw pixels) = o.payload while o.valid

* **Line buffer in memory.** The ``kh - 1`` previous rows live in one
  :class:`amaranth.lib.memory.Memory` of ``W`` words (one word per column holds that column's
  ``kh - 1`` previous pixels), read through a synchronous port one column ahead and written
  back as each pixel arrives: ``W * (kh - 1) * C`` bits of block RAM or LUT RAM, not
  flip-flops. Only the ``kh x kw`` window is flip-flops.
* **Flow.** Every accepted pixel shifts its column into the window registers; after a pixel
  that completes a window (``r >= kh - 1`` and ``c >= kw - 1``, and with a stride ``s > 1``
  ``r - kh + 1`` and ``c - kw + 1`` multiples of ``s``: a phase counter per axis, no divider;
  pixels past the last whole window complete none) the registers are the output,
  valid until it is taken, and no pixel is accepted meanwhile (a pixel is taken in the cycle
  the window is). An output register beside the window registers would let the pixels that
  complete no window stream on while a window waits, for another ``K`` flip-flops per conv
  layer; the window queue behind this unit (:mod:`bnnflow.hw.conv`) is what keeps the
  matrix unit busy across a map's first rows.
* **Timing.** A window leaves on the edge after the pixel completing it was accepted (latency
  1). ``i.ready`` depends on ``o.ready`` through one gate, no state.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .folding import is_int

__all__ = ["SlidingWindow", "check_shape"]


def check_shape(in_shape, kernel, stride):
    if not is_int(stride) or stride < 1:
        raise ValueError(f"stride must be a positive integer, not {stride!r}")
    if (len(in_shape) != 3 or len(kernel) != 2
            or not all(is_int(v) and v > 0 for v in (*in_shape, *kernel))):
        raise ValueError(f"in_shape must be (H, W, C) and kernel (kh, kw), positive integers, "
                         f"not {in_shape!r} and {kernel!r}")
    if kernel[0] > in_shape[0] or kernel[1] > in_shape[1]:
        raise ValueError(f"kernel {kernel[0]}x{kernel[1]} does not fit a "
                         f"{in_shape[0]}x{in_shape[1]} map")


class SlidingWindow(wiring.Component):
    """Convolution windows of a channels-last pixel stream (no padding).

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
    o : Out(stream.Signature(kh * kw * C))
        One window per transfer, ``Ho * Wo`` per map, bit ``(a * kw + b) * C + ch`` = input
        ``(i s + a, j s + b, ch)`` of output position ``(i, j)``.

    Attributes
    ----------
    windows : int
        ``Ho * Wo``, windows per map (``Ho = (H - kh) // s + 1``, ``Wo`` alike).
    latency : int
        1: edges from the transfer of the pixel completing a window to the window's transfer
        (``o.ready`` high).
    line_bits : int
        Bits of the line memory, ``W * (kh - 1) * C`` (0 for ``kh = 1``).

    Raises
    ------
    ValueError
        A shape, kernel or stride that is not positive integers, or a kernel larger than the
        map.
    """

    latency = 1

    def __init__(self, in_shape, kernel, stride=1):
        in_shape, kernel = tuple(in_shape), tuple(kernel)
        check_shape(in_shape, kernel, stride)
        self.in_shape, self.kernel, self.stride = in_shape, kernel, stride
        h, w, c = in_shape
        kh, kw = kernel
        self.windows = ((h - kh) // stride + 1) * ((w - kw) // stride + 1)
        self.line_bits = w * (kh - 1) * c
        super().__init__({"i": In(stream.Signature(c)),
                          "o": Out(stream.Signature(kh * kw * c))})

    def elaborate(self, platform):
        m = Module()
        h, w, c = self.in_shape
        kh, kw = self.kernel
        row = Signal(range(h), name="row")
        col = Signal(range(w), name="col")
        take = Signal()
        m.d.comb += take.eq(self.i.valid & self.i.ready)
        last_col = col == w - 1
        next_col = Mux(take, Mux(last_col, 0, col + 1), col)

        # The column of kh pixels the incoming pixel completes; pixel a is row r - kh + 1 + a.
        if kh > 1:
            m.submodules.lines = lines = Memory(shape=(kh - 1) * c, depth=w, init=[])
            wr = lines.write_port()
            rd = lines.read_port(transparent_for=(wr,))
            column = Cat(rd.data, self.i.payload)
            # Read one column ahead: the word of the pixel accepted next is on rd.data then.
            m.d.comb += [rd.addr.eq(next_col), wr.addr.eq(col), wr.en.eq(take),
                         wr.data.eq(column[c:])]
        else:
            column = self.i.payload

        # win[a][b]: pixel (r - kh + 1 + a, c - kw + 1 + b) after the shift.
        win = [[Signal(c, name=f"win_{a}_{b}") for b in range(kw)] for a in range(kh)]
        shifted = [[win[a][b + 1] for b in range(kw - 1)] + [column[a * c:(a + 1) * c]]
                   for a in range(kh)]
        with m.If(take):
            for a in range(kh):
                for b in range(kw):
                    m.d.sync += win[a][b].eq(shifted[a][b])
            m.d.sync += [col.eq(next_col),
                         row.eq(Mux(last_col, Mux(row == h - 1, 0, row + 1), row))]

        at_window = (row >= kh - 1) & (col >= kw - 1)
        if self.stride > 1:
            at_window &= self._phases(m, take, last_col, row == h - 1)
        m.d.comb += [self.i.ready.eq(~self.o.valid | self.o.ready),
                     self.o.payload.eq(Cat(*[win[a][b] for a in range(kh) for b in range(kw)]))]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(take & at_window):
            m.d.sync += self.o.valid.eq(1)
        return m

    def _phases(self, m, take, last_col, last_row):
        """Whether the pixel's row and column are ``kh - 1`` and ``kw - 1`` plus multiples of
        the stride: one counter per axis that is 0 there (it starts a map, or a row, at
        ``-(k - 1) mod s`` and counts modulo ``s``)."""
        s = self.stride
        kh, kw = self.kernel
        start_r, start_c = -(kh - 1) % s, -(kw - 1) % s
        rph = Signal(range(s), name="row_phase", init=start_r)
        cph = Signal(range(s), name="col_phase", init=start_c)
        with m.If(take):
            m.d.sync += cph.eq(Mux(last_col, start_c, Mux(cph == s - 1, 0, cph + 1)))
            with m.If(last_col):
                m.d.sync += rph.eq(Mux(last_row, start_r, Mux(rph == s - 1, 0, rph + 1)))
        return (rph == 0) & (cph == 0)
