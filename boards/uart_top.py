# amaranth: UnusedElaboratable=no
# (the BnnTop made in UartTop.__init__ is used when the UartTop is; a UartTop that is never
# used is still reported, at the line that made it)

"""UART inference top: the host sends an image's bits, the board answers with its class.

::

    rx --> UARTRx --> frame register --> BnnTop --> reply register --> UARTTx --> tx
                      (ceil(K0/8) bytes)
                  or  pixel assembler (C + 8 bits; conv networks)

Protocol (8N1, ``baud = clk_frequency / divisor``, 115200 on the boards):

* **Request**: ``ceil(K0 / 8)`` bytes, the image's input bits packed LSB first: input bit
  ``j`` is bit ``j % 8`` of byte ``j // 8`` (:func:`numpy.packbits` with
  ``bitorder="little"``). Bits past ``K0`` in the last byte are ignored.
* **Reply**: one byte, the class index; then, unless the top was built with
  ``popcounts=False``, the popcount of every class in class order, each as
  ``ceil(pw / 8)`` bytes little-endian (``pw = bits_for(K_last)``; one byte each up to
  ``K_last = 255``). The reply length is :attr:`UartTop.reply_bytes`.
* **Flow**: the host may send the next request before the previous reply arrives; up to two
  requests in flight are safe (one image in the frame register, one waiting or computing).
  More may overrun the receiver: the bytes are then dropped and the error LED lights.
* **Resync**: a request that stops arriving for ``frame_timeout`` bit times is dropped, so a
  host that lost track waits that long and starts again with a whole request.

A conv network takes its image as a stream of ``C``-bit pixels (sidecar ``input_layout``; ``C``
counts bits: ``Cin * 8`` for 8-bit pixels), so the top holds no frame: bits are shifted into a
``C + 8``-bit assembler as the bytes arrive and each whole pixel goes to the network at once
(pixel ``t`` is input bits ``[t*C, (t+1)*C)``, the same request bytes). The pixels of a
request that stalls are already in the network, so dropping it also resets the network (a
reply still pending is lost with it; the host starts again after the timeout in any case).

LEDs: ``leds[0]`` toggles with every reply, ``leds[1]`` is lit while a request is being
received, waits for the network, or its reply is being sent, ``leds[2]`` latches a framing
error or a receiver overrun (cleared by reset).
"""

import math

from amaranth.hdl import Cat, Const, Module, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..hw.top import BnnTop
from .uart import UARTRx, UARTTx, check_divisor

__all__ = ["UartTop", "request_bytes", "reply_layout", "link_rate"]


def link_rate(protocol, baud):
    """Images per second the UART carries at ``baud`` for ``protocol`` (:meth:`UartTop.protocol`):
    8N1 sends 10 bits a byte, requests and replies travel at once (two requests in flight), so
    the longer of the two bounds the rate, whatever the network's II."""
    return round(baud / (10 * max(protocol["request_bytes"], protocol["reply_bytes"])), 1)


def request_bytes(model):
    """Bytes in one request: ``ceil(K0 / 8)``, or ``ceil(K0 * n / 8)`` for ``n``-bit input
    elements (one byte per pixel for 8-bit pixels)."""
    return math.ceil(model.input.width * model.input.bits / 8)


def reply_layout(model, popcounts=True):
    """``(total_bytes, bytes_per_popcount)`` of one reply for ``model``: each popcount in as
    many bytes as its largest value, ``L * K``, needs (``n``-bit inputs reach ``L = 2**n - 1``
    per input)."""
    last = model.layers[-1]
    per = math.ceil((((1 << last.in_bits) - 1) * last.in_width).bit_length() / 8)
    count = model.num_classes if popcounts else 0
    return 1 + count * per, per


class UartTop(wiring.Component):
    """A :class:`~bnnflow.hw.top.BnnTop` behind a UART, with activity LEDs.

    Parameters
    ----------
    model : BnnModel
        At most 256 classes (the class travels in one byte).
    folding : None, str or sequence of LayerFold / (pe, simd)
        Passed to :class:`~bnnflow.hw.top.BnnTop`; ``None`` is fully parallel.
    pipeline : int
        Register stages in each popcount adder tree.
    divisor : int
        Clock cycles per UART bit, ``>= 2`` (``round(clk_frequency / baud)`` on a board; a
        small value such as 4 in simulation, with the same gateware otherwise).
    popcounts : bool
        Reply with the class popcounts after the class byte.
    frame_timeout : int
        Bit times of silence after which a partly received request is dropped, ``>= 1``.
    rom_register : bool
        A register on each weight ROM's output (:class:`~bnnflow.hw.mvtu.MVTU`; ``bnnflow
        build`` sets it per family from :data:`bnnflow.boards.estimate.ROM_REGISTER`).

    Members
    -------
    rx : In(1)
        UART line from the host, idle high.
    tx : Out(1)
        UART line to the host, idle high.
    leds : Out(3)
        ``[0]`` toggles per reply, ``[1]`` busy, ``[2]`` sticky receive error.

    Attributes
    ----------
    bnn : BnnTop
    request_bytes : int
    reply_bytes : int
    popcount_bytes : int
        Bytes per popcount in the reply (0 with ``popcounts=False``).

    Raises
    ------
    ValueError
        Bad ``divisor`` or ``frame_timeout``, more than 256 classes, or what
        :class:`~bnnflow.hw.top.BnnTop` refuses.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    leds: Out(3)

    def __init__(self, model, folding=None, pipeline=0, *, divisor, popcounts=True,
                 frame_timeout=2000, rom_register=False):
        self.divisor = check_divisor(divisor)
        if (not isinstance(frame_timeout, int) or isinstance(frame_timeout, bool)
                or frame_timeout < 1):
            raise ValueError(f"frame_timeout must be a positive integer number of bit times, "
                             f"not {frame_timeout!r}")
        classes = model.layers[-1].out_width
        if classes > 256:
            raise ValueError(f"the UART top sends the class in one byte: at most 256 classes, "
                             f"not {classes}")
        self.model = model
        self.popcounts = bool(popcounts)
        self.frame_timeout = frame_timeout
        self.bnn = BnnTop(model, folding, pipeline, rom_register=rom_register)
        self.pixels = self.bnn.in_chunk != model.input.width * model.input.bits
        self.request_bytes = request_bytes(model)
        self.reply_bytes, per = reply_layout(model, self.popcounts)
        self.popcount_bytes = per if self.popcounts else 0
        super().__init__()

    def protocol(self):
        """The protocol as a dict (written beside the bitstream by ``bnnflow build``)."""
        return {
            "framing": "8N1",
            "divisor": self.divisor,
            "request_bytes": self.request_bytes,
            "request": "input bit j = bit j % 8 of byte j // 8 (LSB first)" + (
                f"; sent on as {self.bnn.in_chunk}-bit pixels as they arrive"
                if self.pixels else ""),
            "reply_bytes": self.reply_bytes,
            "reply": ("class index (1 byte)" + (
                f", then {self.bnn.num_classes} popcounts in class order, "
                f"{self.popcount_bytes} byte(s) each, little-endian" if self.popcounts else "")),
            "popcounts": self.popcounts,
            "max_in_flight": 2,
            "frame_timeout_bits": self.frame_timeout,
        }

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = urx = UARTRx(self.divisor)
        bnn = self.bnn
        m.submodules.uart_tx = utx = UARTTx(self.divisor)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        if self.pixels:
            receiving = self._pixel_request(m, urx, bnn)
        else:
            m.submodules.bnn = bnn
            receiving = self._frame_request(m, urx, bnn)
        left = self._reply(m, utx, bnn)
        m.d.comb += self.leds[1].eq(receiving | bnn.i.valid | (left != 0) | ~utx.i.ready)
        with m.If(urx.frame_error | urx.overrun):
            m.d.sync += self.leds[2].eq(1)
        return m

    def _timeout(self, m, idle_now):
        """A strobe after ``frame_timeout`` bit times with ``idle_now`` low throughout."""
        limit = self.frame_timeout * self.divisor
        idle = Signal(range(limit + 1))
        expired = Signal()
        m.d.comb += expired.eq(~idle_now & (idle == limit))
        with m.If(idle_now | expired):
            m.d.sync += idle.eq(0)
        with m.Else():
            m.d.sync += idle.eq(idle + 1)
        return expired

    def _frame_request(self, m, urx, bnn):
        """Whole vectors: the request's bytes collect in a frame register (``K0 * n`` bits for
        ``n``-bit input elements)."""
        k0 = self.model.input.width * self.model.input.bits
        nin = self.request_bytes

        # Request: shift bytes in from the top, so the first byte ends at the bottom.
        frame = Signal(8 * nin)
        count = Signal(range(nin + 1))
        full = count == nin
        m.d.comb += urx.o.ready.eq(~full)
        with m.If(urx.o.valid & urx.o.ready):
            if nin > 1:
                m.d.sync += frame.eq(Cat(frame[8:], urx.o.payload))
            else:
                m.d.sync += frame.eq(urx.o.payload)
            m.d.sync += count.eq(count + 1)

        # Drop a request that stalls mid-way for frame_timeout bit times.
        with m.If(self._timeout(m, (count == 0) | full | urx.o.valid)):
            m.d.sync += count.eq(0)

        # A complete frame is BnnTop's input: it holds (no byte enters a full frame) until the
        # first layer has taken it, so the vector is held once here and once in that layer.
        m.d.comb += [bnn.i.payload.eq(frame[:k0]), bnn.i.valid.eq(full)]
        with m.If(bnn.i.valid & bnn.i.ready):
            m.d.sync += count.eq(0)
        return count != 0

    def _pixel_request(self, m, urx, bnn):
        """Pixel streams (conv networks): bytes shift into a ``C + 8``-bit assembler, each
        whole pixel goes on at once; a byte is taken only while less than a pixel waits, so a
        byte and a pixel never move in the same cycle."""
        c, nin = bnn.in_chunk, self.request_bytes
        pixels = self.model.input.width * self.model.input.bits // c    # c counts bits
        buf = Signal(c + 8)
        nbits = Signal(range(c + 9))
        sent = Signal(range(pixels + 1))
        rcv = Signal(range(nin + 1))
        m.d.comb += [bnn.i.valid.eq((nbits >= c) & (sent < pixels)),
                     bnn.i.payload.eq(buf[:c]),
                     urx.o.ready.eq((nbits < c) & (rcv < nin))]
        # A request that stalls mid-way is dropped, and the network with its pixels.
        flush = self._timeout(m, (rcv == 0) | (rcv == nin) | urx.o.valid)
        m.submodules.bnn = ResetInserter(flush)(bnn)
        last = (sent == pixels - 1) & (rcv == nin)
        with m.If(flush | (bnn.i.valid & bnn.i.ready & last)):
            # The bits past K0 in the last byte are dropped here.
            m.d.sync += [buf.eq(0), nbits.eq(0), sent.eq(0), rcv.eq(0)]
        with m.Elif(urx.o.valid & urx.o.ready):
            m.d.sync += [buf.eq(buf | (urx.o.payload << nbits)), nbits.eq(nbits + 8),
                         rcv.eq(rcv + 1)]
        with m.Elif(bnn.i.valid & bnn.i.ready):
            m.d.sync += [buf.eq(buf >> c), nbits.eq(nbits - c), sent.eq(sent + 1)]
        return rcv != 0

    def _reply(self, m, utx, bnn):
        """Class byte, then popcounts, shifted out one byte at a time; returns the bytes
        left."""
        cw, pw, classes = bnn.class_width, bnn.popcount_width, bnn.num_classes
        fields = [bnn.o.payload[:cw], Const(0, 8 - cw)] if cw < 8 else [bnn.o.payload[:8]]
        if self.popcounts:
            per_bits = 8 * self.popcount_bytes
            for c in range(classes):
                fields.append(bnn.o.payload[cw + c * pw: cw + (c + 1) * pw])
                if per_bits > pw:
                    fields.append(Const(0, per_bits - pw))
        reply = Signal(8 * self.reply_bytes)
        left = Signal(range(self.reply_bytes + 1))
        m.d.comb += [bnn.o.ready.eq(left == 0),
                     utx.i.payload.eq(reply[:8]),
                     utx.i.valid.eq(left != 0)]
        with m.If(bnn.o.valid & bnn.o.ready):
            m.d.sync += [reply.eq(Cat(*fields)), left.eq(self.reply_bytes),
                         self.leds[0].eq(~self.leds[0])]
        with m.Elif(utx.i.valid & utx.i.ready):
            m.d.sync += [reply.eq(reply >> 8), left.eq(left - 1)]
        return left
