# amaranth: UnusedElaboratable=no

"""UART receiver and transmitter in Amaranth's simulator, against a bit-level line model."""

import re

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from bnnflow.boards.uart import UARTRx, UARTTx


def line_bits(byte, stop=1):
    """8N1 frame of one byte: start bit, data LSB first, stop bit."""
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


async def drive_line(ctx, rx, bits, divisor, baud_error=0.0):
    """Drive ``bits`` on ``rx``; the sender's bit time is ``divisor * (1 + baud_error)``."""
    edges = [round(i * divisor * (1 + baud_error)) for i in range(len(bits) + 1)]
    for bit, start, end in zip(bits, edges, edges[1:], strict=False):
        ctx.set(rx, bit)
        await ctx.tick().repeat(end - start)


@pytest.mark.parametrize("divisor", [2, 3, 4, 7, 16])
@pytest.mark.parametrize("seed", [0, 1])
def test_rx_receives_bytes_with_stalled_consumer(divisor, seed):
    rng = np.random.default_rng(seed)
    data = [0x00, 0xFF, 0x55, 0xA5, *rng.integers(0, 256, size=6).tolist()]
    dut = UARTRx(divisor)
    received = []

    async def sender(ctx):
        await ctx.tick().repeat(3)
        # Idle gaps of random length between frames; a sender whose baud rate is off by up
        # to 3 % when the bit is long enough to resolve it.
        for byte in data:
            error = float(rng.uniform(-0.03, 0.03)) if divisor >= 7 else 0.0
            await drive_line(ctx, dut.rx, line_bits(byte), divisor, baud_error=error)
            await ctx.tick().repeat(int(rng.integers(1, 4)))

    async def receiver(ctx):
        for _ in range(20 * divisor * len(data)):
            if len(received) == len(data):
                break
            # The consumer is slow for a few cycles, but never slower than one frame.
            ctx.set(dut.o.ready, int(rng.random() < 0.5))
            _, _, valid, ready, payload, err, ovr = await ctx.tick().sample(
                dut.o.valid, dut.o.ready, dut.o.payload, dut.frame_error, dut.overrun)
            assert not err and not ovr
            if valid and ready:
                received.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(sender)
    sim.add_testbench(receiver)
    sim.run()
    assert received == data


@pytest.mark.parametrize("divisor", [2, 5])
def test_rx_drops_frame_with_bad_stop_bit(divisor):
    dut = UARTRx(divisor)
    received, errors = [], []

    async def sender(ctx):
        await ctx.tick().repeat(3)
        await drive_line(ctx, dut.rx, line_bits(0x3C, stop=0), divisor)
        await drive_line(ctx, dut.rx, [1, 1], divisor)
        await drive_line(ctx, dut.rx, line_bits(0xC3), divisor)
        await ctx.tick().repeat(3 * divisor)

    async def monitor(ctx):
        ctx.set(dut.o.ready, 1)
        async for _, _, valid, payload, err in ctx.tick().sample(
                dut.o.valid, dut.o.payload, dut.frame_error):
            if valid:
                received.append(payload)
            if err:
                errors.append(1)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(sender)
    sim.add_testbench(monitor, background=True)
    sim.run()
    assert received == [0xC3]
    assert errors == [1]


def test_rx_reports_overrun_when_consumer_never_reads():
    divisor = 4
    dut = UARTRx(divisor)
    overruns = []

    async def sender(ctx):
        await ctx.tick().repeat(3)
        for byte in (0x11, 0x22):
            await drive_line(ctx, dut.rx, line_bits(byte), divisor)
        await ctx.tick().repeat(3 * divisor)
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 0x11

    async def monitor(ctx):
        async for _, _, ovr in ctx.tick().sample(dut.overrun):
            if ovr:
                overruns.append(1)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(sender)
    sim.add_testbench(monitor, background=True)
    sim.run()
    assert overruns == [1]


@pytest.mark.parametrize("divisor", [2, 3, 9])
def test_tx_sends_frames_with_exact_bit_timing(divisor):
    data = [0x00, 0xFF, 0x81, 0x5A]
    dut = UARTTx(divisor)
    line = []

    async def producer(ctx):
        for byte in data:
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)
        await ctx.tick().repeat(12 * divisor)

    async def monitor(ctx):
        async for _, _, tx in ctx.tick().sample(dut.tx):
            line.append(tx)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(monitor, background=True)
    sim.run()
    start = line.index(0)
    expected = [b for byte in data for b in line_bits(byte)]
    # Back-to-back frames, each bit held exactly `divisor` cycles, then idle high.
    got = line[start:start + len(expected) * divisor]
    assert got == [b for b in expected for _ in range(divisor)]
    assert all(line[start + len(expected) * divisor:])
    assert all(line[:start])


@pytest.mark.parametrize("divisor", [2, 6])
def test_tx_to_rx_loopback(divisor):
    data = list(range(0, 256, 17))
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    received = []

    async def producer(ctx):
        for byte in data:
            ctx.set(tx.i.payload, byte)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
        ctx.set(tx.i.valid, 0)

    async def consumer(ctx):
        ctx.set(rx.o.ready, 1)
        for _ in range(12 * divisor * len(data)):
            if len(received) == len(data):
                break
            _, _, valid, payload = await ctx.tick().sample(rx.o.valid, rx.o.payload)
            if valid:
                received.append(payload)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert received == data


@pytest.mark.parametrize("cls", [UARTRx, UARTTx])
@pytest.mark.parametrize("divisor", [0, 1, -3, 2.5, True, "4"])
def test_bad_divisor_is_refused(cls, divisor):
    with pytest.raises(ValueError,
                       match=f"^{re.escape(f'divisor must be an integer >= 2, not {divisor!r}')}$"):
        cls(divisor)
