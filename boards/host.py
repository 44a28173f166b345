"""Host side of the UART inference top: one transport interface, two backends.

* :class:`SerialTransport` talks to a board through a serial port (pyserial).
* :class:`SimTransport` runs the same :class:`~bnnflow.boards.uart_top.UartTop` gateware in
  Amaranth's simulator and drives its ``rx`` / samples its ``tx`` pins bit by bit, so the whole
  host-to-gateware path (byte packing, UART framing, request buffering, reply layout) is tested
  without a board. Only the clock divider differs from a board build (a few cycles per bit
  instead of ``clk / 115200``), which keeps the simulation fast.

:func:`classify_over` runs images through either transport and checks each reply against the
golden model; the protocol is described in :mod:`bnnflow.boards.uart_top`.
"""

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..errors import BnnflowError
from ..model import golden
from ..model.conventions import pack_int
from .uart_top import reply_layout, request_bytes

__all__ = ["Transport", "SerialTransport", "SimTransport", "TransportTimeout",
           "encode_request", "decode_reply", "classify_over", "BoardRun"]


class TransportTimeout(BnnflowError):
    """No (complete) reply arrived in time."""


def encode_request(bits, element_bits=1):
    """One request: input bits ``(K0,)`` of 0/1 packed LSB first into ``ceil(K0/8)`` bytes;
    with ``element_bits = n`` the ``n``-bit elements packed the same way, element ``j`` at
    bits ``[n*j, n*(j+1))`` (8-bit pixels: one byte each)."""
    if element_bits != 1:
        value = pack_int(np.asarray(bits), element_bits)
        return value.to_bytes(-(-len(bits) * element_bits // 8), "little")
    bits = np.asarray(bits, dtype=np.uint8)
    return np.packbits(bits, bitorder="little").tobytes()


def decode_reply(data, classes, per):
    """Split a reply into ``(class, popcounts or None)``.

    ``classes`` popcounts of ``per`` bytes each follow the class byte when
    ``len(data) > 1``.
    """
    data = bytes(data)
    if len(data) == 1:
        return data[0], None
    if len(data) != 1 + classes * per:
        raise ValueError(f"reply must be 1 or {1 + classes * per} bytes, not {len(data)}")
    counts = [int.from_bytes(data[1 + c * per: 1 + (c + 1) * per], "little")
              for c in range(classes)]
    return data[0], np.array(counts, dtype=np.int64)


class Transport:
    """A byte pipe to a UART inference top.

    Subclasses implement :meth:`write`, :meth:`read` and :meth:`close`; a transport is a
    context manager that closes itself.
    """

    #: Short name shown in reports ("serial /dev/ttyUSB0", "sim").
    name = "transport"

    def write(self, data):
        """Send ``data`` (bytes) to the board."""
        raise NotImplementedError

    def read(self, n, timeout):
        """Return exactly ``n`` bytes; raise :class:`TransportTimeout` after ``timeout`` s."""
        raise NotImplementedError

    def close(self):
        """Release the port or the simulator."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SerialTransport(Transport):
    """A serial port (pyserial), 8N1.

    Parameters
    ----------
    port : str
        Device, e.g. ``/dev/ttyUSB1`` (the iCEBreaker's and ULX3S's FTDI UART).
    baudrate : int

    Raises
    ------
    BnnflowError
        If the port cannot be opened (the message names the port and the OS error).
    """

    def __init__(self, port, baudrate=115200):
        import serial

        self.name = f"serial {port}"
        try:
            self._port = serial.Serial(port, baudrate=baudrate, bytesize=8, parity="N",
                                       stopbits=1, timeout=0.1)
        except (serial.SerialException, OSError, ValueError) as e:
            raise BnnflowError(f"cannot open serial port {port!r}: {e}") from None
        self._port.reset_input_buffer()

    def write(self, data):
        self._port.write(bytes(data))

    def read(self, n, timeout):
        deadline = time.monotonic() + timeout
        data = bytearray()
        while len(data) < n:
            data += self._port.read(n - len(data))
            if len(data) < n and time.monotonic() > deadline:
                raise TransportTimeout(
                    f"{self.name}: got {len(data)} of {n} reply bytes within {timeout} s; check "
                    f"that the board runs the bitstream of this model and that --baud and "
                    f"--class-only match the build")
        return bytes(data)

    def close(self):
        self._port.close()


class SimTransport(Transport):
    """The UART inference top in Amaranth's simulator, driven through its pins.

    Parameters
    ----------
    top : UartTop
        The gateware (built with a small ``divisor``, e.g. 4).
    max_cycles_per_read : int or None
        Simulated cycles a :meth:`read` may take before :class:`TransportTimeout`; default
        generous for one reply plus the network's latency.

    Attributes
    ----------
    cycles : int
        Clock cycles simulated so far.
    """

    name = "sim"
    _PERIOD = 1e-6

    def __init__(self, top, max_cycles_per_read=None):
        from ..hw.testbench import simulator

        self.top = top
        self.cycles = 0
        d = top.divisor
        self._outgoing = deque()
        self._incoming = bytearray()
        if max_cycles_per_read is None:
            max_cycles_per_read = (10 * d * (2 * top.request_bytes + top.reply_bytes + 4)
                                   + 4 * (top.bnn.latency + top.bnn.ii) + 1000)
        self.max_cycles_per_read = max_cycles_per_read
        self._sim = simulator(top)
        self._sim.add_clock(self._PERIOD)
        self._sim.add_testbench(self._drive_rx, background=True)
        self._sim.add_testbench(self._monitor_tx, background=True)

    async def _drive_rx(self, ctx):
        d = self.top.divisor
        ctx.set(self.top.rx, 1)
        while True:
            if not self._outgoing:
                await ctx.tick()
                continue
            byte = self._outgoing.popleft()
            for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
                ctx.set(self.top.rx, bit)
                await ctx.tick().repeat(d)

    async def _monitor_tx(self, ctx):
        d = self.top.divisor
        tx = self.top.tx
        while True:
            # Wait for the first cycle of a start bit. (Not ``tick().until()``: its
            # asynchronous generator complains when the simulator is dropped mid-wait.)
            await ctx.tick()
            if ctx.get(tx):
                continue
            await ctx.tick().repeat(max(1, d // 2))   # middle of the start bit
            byte = 0
            for i in range(8):
                await ctx.tick().repeat(d)
                byte |= ctx.get(tx) << i
            await ctx.tick().repeat(d)
            if not ctx.get(tx):
                raise AssertionError("sim transport: the UART top sent a frame without its "
                                     "stop bit")
            self._incoming.append(byte)

    def _run(self, cycles):
        self.cycles += cycles
        self._sim.run_until(self.cycles * self._PERIOD)

    def write(self, data):
        self._outgoing.extend(bytes(data))

    def read(self, n, timeout=None):
        # ``timeout`` (wall-clock seconds) is not used: the bound is in simulated cycles.
        budget = self.max_cycles_per_read
        step = 10 * self.top.divisor
        while len(self._incoming) < n:
            if budget <= 0:
                raise TransportTimeout(
                    f"sim: got {len(self._incoming)} of {n} reply bytes within "
                    f"{self.max_cycles_per_read} cycles")
            self._run(step)
            budget -= step
        data = bytes(self._incoming[:n])
        del self._incoming[:n]
        return data

    def idle(self, cycles):
        """Let the simulation run ``cycles`` cycles with nothing sent (tests: timeouts)."""
        self._run(cycles)


@dataclass
class BoardRun:
    """What :func:`classify_over` saw.

    Attributes
    ----------
    classes : int array ``(B,)``
        Classes the board answered.
    popcounts : int array ``(B, C)`` or None
        Popcounts the board answered (None for class-only replies).
    expected : GoldenResult
        The golden model on the same bits.
    mismatches : int
        Images whose class (or popcounts, when sent) differ from the golden model.
    seconds : float
        Wall-clock time of the exchange.
    """

    classes: np.ndarray
    popcounts: np.ndarray | None
    expected: golden.GoldenResult
    mismatches: int
    seconds: float

    @property
    def images_per_second(self):
        return len(self.classes) / self.seconds if self.seconds > 0 else float("inf")


def classify_over(transport, model, bits, *, popcounts=True, window=2, timeout=2.0,
                  progress=None):
    """Send every row of ``bits`` ``(B, K0)`` as a request and check the replies.

    Up to ``window`` (1 or 2) requests are in flight, which keeps the UART busy in both
    directions (see :mod:`bnnflow.boards.uart_top`). ``progress(done)`` is called after each
    reply when given.
    """
    if window not in (1, 2):
        raise ValueError(f"window must be 1 or 2, not {window!r}")
    bits = np.asarray(bits, dtype=np.uint8)
    expected = golden.run(model, bits)
    size, per = reply_layout(model, popcounts)
    classes_n = model.layers[-1].out_width
    width = model.input.bits
    if len(bits) and len(encode_request(bits[0], width)) != request_bytes(model):
        raise ValueError("request size does not match the model")
    got_classes = np.zeros(len(bits), dtype=np.int64)
    got_counts = np.zeros((len(bits), classes_n), dtype=np.int64) if popcounts else None
    start = time.perf_counter()
    sent = 0
    for done in range(len(bits)):
        while sent < len(bits) and sent - done < window:
            transport.write(encode_request(bits[sent], width))
            sent += 1
        cls, counts = decode_reply(transport.read(size, timeout), classes_n, per)
        got_classes[done] = cls
        if popcounts:
            got_counts[done] = counts
        if progress is not None:
            progress(done + 1)
    seconds = time.perf_counter() - start
    bad = got_classes != expected.classes
    if popcounts:
        bad |= np.any(got_counts != expected.popcounts, axis=1)
    return BoardRun(classes=got_classes, popcounts=got_counts, expected=expected,
                    mismatches=int(bad.sum()), seconds=seconds)
