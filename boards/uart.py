"""A small 8N1 UART: a receiver and a transmitter with stream interfaces.

Frame on the line (idle high): one start bit (0), eight data bits LSB first, one stop bit (1).
Every bit lasts ``divisor`` clock cycles, so the baud rate is ``clk_frequency / divisor``
(e.g. 12 MHz / 104 = 115384 baud, 0.16 % from 115200, well inside the 8N1 tolerance of
about 4 %).

The receiver synchronizes the line with two flip-flops, waits half a bit after the falling
edge of the start bit, checks that the line is still low (a shorter glitch is ignored), then
samples every data bit and the stop bit in their middle. A frame whose stop bit is 0 is
dropped and pulses ``frame_error``. A byte that arrives while the previous one still waits
for its consumer is dropped and pulses ``overrun``.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "check_divisor"]


def check_divisor(divisor):
    """Return ``divisor`` if it is an integer >= 2; raise ``ValueError`` otherwise."""
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 2:
        raise ValueError(f"divisor must be an integer >= 2, not {divisor!r}")
    return divisor


class UARTRx(wiring.Component):
    """UART receiver, 8N1.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, ``>= 2``.

    Members
    -------
    rx : In(1)
        The serial line (idle high). Asynchronous to the clock: it is synchronized inside.
    o : Out(stream.Signature(8))
        Received bytes. ``valid`` holds until the transfer.
    frame_error : Out(1)
        High for one cycle when a frame with a 0 stop bit is dropped.
    overrun : Out(1)
        High for one cycle when a byte is dropped because ``o`` still held the previous one.

    Raises
    ------
    ValueError
        If ``divisor`` is not an integer >= 2.
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    frame_error: Out(1)
    overrun: Out(1)

    def __init__(self, divisor):
        self.divisor = check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        divisor = self.divisor

        line = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, line, init=1)

        timer = Signal(range(divisor))
        bits = Signal(range(10))
        shreg = Signal(8)

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    m.next = "IDLE"                      # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(divisor - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shreg.eq(Cat(shreg[1:], line)),
                                 timer.eq(divisor - 1), bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(~line):
                        # A break or a framing error: wait for the line to return high before
                        # looking for the next start bit.
                        m.d.comb += self.frame_error.eq(1)
                        m.next = "WAIT_IDLE"
                    with m.Else():
                        with m.If(self.o.valid & ~self.o.ready):
                            m.d.comb += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                        m.next = "IDLE"
            with m.State("WAIT_IDLE"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """UART transmitter, 8N1.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, ``>= 2``.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send. ``ready`` is high while the transmitter is idle and in the last cycle
        of a stop bit; a byte taken at edge ``t`` puts its start bit on the line from ``t``
        on, so back-to-back bytes are sent with no gap, each exactly ``10 * divisor`` cycles.
    tx : Out(1)
        The serial line, idle high.

    Raises
    ------
    ValueError
        If ``divisor`` is not an integer >= 2.
    """

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, divisor):
        self.divisor = check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        divisor = self.divisor

        timer = Signal(range(divisor))
        bits = Signal(range(11))            # bits still to send, stop bit included
        shreg = Signal(10, init=0x3FF)      # LSB is on the line

        # Ready while idle, and in the last cycle of a stop bit, so that back-to-back bytes
        # leave no idle cycle between frames.
        last = (bits == 0) | ((bits == 1) & (timer == 0))
        m.d.comb += [self.tx.eq(shreg[0]), self.i.ready.eq(last)]
        with m.If(last & self.i.valid):
            m.d.sync += [shreg.eq(self.i.payload.as_unsigned() << 1 | (1 << 9)),
                         bits.eq(10), timer.eq(divisor - 1)]
        with m.Elif(bits == 0):
            pass
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [shreg.eq(shreg >> 1 | (1 << 9)), bits.eq(bits - 1),
                         timer.eq(divisor - 1)]
        return m
