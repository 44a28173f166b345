# amaranth: UnusedElaboratable=no
# (the BnnTop made in UartTop.__init__ is used when the UartTop is; a UartTop that is never
# used is still reported, at the line that made it)

"""UART inference top: the host sends an image's bits, the board answers with its class.

::

    rx --> UARTRx --> frame register --> BnnTop --> reply register --> UARTTx --> tx
                      (ceil(K0/8) bytes)

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

LEDs: ``leds[0]`` toggles with every reply, ``leds[1]`` is lit while a request is being
received, waits for the network, or its reply is being sent, ``leds[2]`` latches a framing
error or a receiver overrun (cleared by reset).
"""

import math

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..hw.top import BnnTop
from .uart import UARTRx, UARTTx, check_divisor

__all__ = ["UartTop", "request_bytes", "reply_layout"]


def request_bytes(model):
    """Bytes in one request: ``ceil(K0 / 8)``."""
    return math.ceil(model.input.width / 8)


def reply_layout(model, popcounts=True):
    """``(total_bytes, bytes_per_popcount)`` of one reply for ``model``."""
    k_last = model.layers[-1].in_width
    per = math.ceil(k_last.bit_length() / 8)
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
        Bad ``divisor`` or ``frame_timeout``, more than 256 classes, a network with a
        pixel-stream input (conv), or what :class:`~bnnflow.hw.top.BnnTop` refuses.
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
        if self.bnn.in_chunk != model.input.width:
            # The frame register holds whole images; a conv network takes a pixel stream.
            raise ValueError("the UART top sends whole input vectors: board builds of conv "
                             "networks (pixel-stream input) are not supported yet (issue "
                             "17); 'bnnflow synth' measures them out of context")
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
            "request": "input bit j = bit j % 8 of byte j // 8 (LSB first)",
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
        m.submodules.bnn = bnn = self.bnn
        m.submodules.uart_tx = utx = UARTTx(self.divisor)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]

        k0 = self.model.input.width
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
        limit = self.frame_timeout * self.divisor
        idle = Signal(range(limit + 1))
        with m.If((count == 0) | full | urx.o.valid):
            m.d.sync += idle.eq(0)
        with m.Elif(idle == limit):
            m.d.sync += [idle.eq(0), count.eq(0)]
        with m.Else():
            m.d.sync += idle.eq(idle + 1)

        # A complete frame is BnnTop's input: it holds (no byte enters a full frame) until the
        # first layer has taken it, so the vector is held once here and once in that layer.
        m.d.comb += [bnn.i.payload.eq(frame[:k0]), bnn.i.valid.eq(full)]
        with m.If(bnn.i.valid & bnn.i.ready):
            m.d.sync += count.eq(0)

        # Reply: class byte, then popcounts, shifted out one byte at a time.
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

        m.d.comb += self.leds[1].eq((count != 0) | bnn.i.valid | (left != 0) | ~utx.i.ready)
        with m.If(urx.frame_error | urx.overrun):
            m.d.sync += self.leds[2].eq(1)
        return m
