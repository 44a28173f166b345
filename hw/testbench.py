"""Stream test benches for Amaranth's simulator: drive vectors in, collect vectors out.

Used by ``tests/hw`` (and usable by other test suites): :func:`simulate_stream` feeds a list of
payloads into a component's input stream and collects its output transfers, with seeded random
gaps in ``valid`` (producer side) and ``ready`` (consumer side), and records the clock edge of
every transfer so tests can measure II and latency.

:class:`Stalls` is the one stall model of every bench, this one and the network bench of
:mod:`bnnflow.sim.stimulus` (whose draws the C++ harness of :mod:`bnnflow.sim.direct`
replays): a geometric gap before each input offer and an independent ``o.ready`` per cycle,
each side from its own seeded generator (:func:`gap_rng`). Payloads are Python ints;
:func:`bnnflow.model.conventions.pack_int` packs bit vectors (element ``i`` = bit ``i``) and
fields into them, :func:`from_int` unpacks fields.
"""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["StreamRun", "Stalls", "gap_rng", "simulator", "simulate_stream", "from_int",
           "fields_of"]


def simulator(design, fix="fold it with fewer PE x SIMD per layer (--fold, or --fold auto --ii "
                          "CYCLES)"):
    """Amaranth's Python simulator of ``design``, for designs of any width it takes.

    Its code generator writes each signal's mask as a decimal literal, and Python refuses ints
    of more than 4300 digits in str conversions (a guard against untrusted input): an XNOR of
    ``PE * SIMD`` bits past about 14,000 (a fully parallel layer of 150 x 100) stopped it with
    a ValueError. The code it generates is ours, so the limit is lifted first. Values of more
    than 65536 bits it refuses itself (an OverflowError): that becomes a
    :class:`~bnnflow.errors.BnnflowError` ending in ``fix``.
    """
    import re
    import sys

    from amaranth.sim import Simulator

    from ..errors import BnnflowError

    sys.set_int_max_str_digits(0)
    try:
        return Simulator(design)
    except OverflowError as e:
        width = re.search(r"is (\d+) bits wide", str(e))
        wide = f"one of {width[1]} bits" if width else "a wider one"
        raise BnnflowError(f"Amaranth's simulator takes values of at most 65536 bits and this "
                           f"design has {wide} (a layer's weight word is PE x SIMD bits, twice "
                           f"that for ternary weights); {fix}") from None


def gap_rng(seed, stream):
    """The seeded generator of one side (``stream`` 0: input gaps, 1: output back-pressure)."""
    return np.random.default_rng([int(seed), int(stream)])


class Stalls:
    """Seeded stalls of a stream bench.

    Parameters
    ----------
    seed : int
    p_gap : float
        Before each input offer, each further gap cycle comes with this probability (the gap
        length is geometric; ``0``: offers back to back), drawn from ``gap_rng(seed, 0)``.
    p_busy : float
        Probability that the consumer is not ready in a cycle, drawn from
        ``gap_rng(seed, 1)``.

    A gap draws ``random() < p_gap`` until it is false; a ready draws ``random() >= p_busy``:
    the same doubles in the same order everywhere, so a seed gives the same stalls on every
    simulator (:func:`bnnflow.sim.direct.stall_decisions` draws them in bulk).
    """

    def __init__(self, seed, p_gap, p_busy):
        for name, p in (("p_gap", p_gap), ("p_busy", p_busy)):
            if not 0.0 <= float(p) < 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1), not {p!r}")
        self.p_gap, self.p_busy = float(p_gap), float(p_busy)
        self._gaps, self._ready = gap_rng(seed, 0), gap_rng(seed, 1)

    def gap(self):
        """Gap cycles before the next input offer."""
        gap = 0
        while self._gaps.random() < self.p_gap:
            gap += 1
        return gap

    def ready(self):
        """Whether the consumer is ready in this cycle."""
        return bool(self._ready.random() >= self.p_busy)


def from_int(value, count, width=1):
    """``count`` unsigned fields of ``width`` bits from ``value`` (field ``i`` at bit
    ``i * width``), as an int64 array."""
    mask = (1 << width) - 1
    return np.array([(value >> (i * width)) & mask for i in range(count)], dtype=np.int64)


def fields_of(values, count, width=1, lsb=0):
    """:func:`from_int` over a list of ints, shape ``(len(values), count)``."""
    return np.array([from_int(v >> lsb, count, width) for v in values],
                    dtype=np.int64).reshape(len(values), count)


@dataclass
class StreamRun:
    """What :func:`simulate_stream` saw.

    Attributes
    ----------
    outputs : list of int
        Output payloads, in order.
    in_edges, out_edges : list of int
        Clock edge (counted from 1 at the first edge) of each input / output transfer.
    taps : dict
        ``{name: list of (edge, payload)}`` for each tap ``(valid, data)`` pair given.
    cycles : int
        Edges simulated.
    """

    outputs: list = field(default_factory=list)
    in_edges: list = field(default_factory=list)
    out_edges: list = field(default_factory=list)
    taps: dict = field(default_factory=dict)
    cycles: int = 0


def simulate_stream(dut, inputs, *, expected_outputs=None, seed=0, p_valid=1.0, p_ready=1.0,
                    max_cycles=100000, taps=None, reset_at=None, input_after_reset=None):
    """Simulate ``dut``: send ``inputs`` on ``dut.i``, collect ``dut.o``.

    Parameters
    ----------
    dut : wiring.Component with ``i`` (In stream) and ``o`` (Out stream) members
    inputs : list of int
        Payloads to send, in order.
    expected_outputs : int or None
        Stop after this many output transfers (default ``len(inputs)``).
    seed : int
        Seed of the random valid/ready pattern.
    p_valid, p_ready : float
        Probability that the producer offers data / the consumer is ready in a cycle
        (``1.0`` = no stalls), in ``(0, 1]``: :class:`Stalls` with ``p_gap = 1 - p_valid``
        (each cycle before an offer is a gap with that probability) and
        ``p_busy = 1 - p_ready``. Once offered, ``valid`` holds until the transfer.
    max_cycles : int
        Fail (``RuntimeError``) if the outputs have not arrived by then.
    taps : dict or None
        ``{name: (valid_signal, data_signal)}`` to record.
    reset_at : int or None
        Assert the synchronous reset for one cycle at this edge, then send
        ``input_after_reset`` (outputs collected before the reset are dropped).
    """
    from amaranth.hdl import ClockDomain, Module
    i_port, o_port = dut.i, dut.o
    m = Module()
    m.domains.sync = cd = ClockDomain("sync")
    m.submodules.dut = dut
    stalls = Stalls(seed, 1.0 - p_valid, 1.0 - p_ready)
    run = StreamRun()
    taps = dict(taps or {})
    run.taps = {name: [] for name in taps}
    queue = list(inputs)
    want = len(inputs) if expected_outputs is None else expected_outputs
    if reset_at is not None and input_after_reset is not None:
        want = len(input_after_reset) if expected_outputs is None else expected_outputs

    async def bench(ctx):
        nonlocal queue
        gap = stalls.gap()
        edge = 0
        reset_done = reset_at is None
        while len(run.outputs) < want or not reset_done:
            if edge >= max_cycles:
                raise RuntimeError(f"timeout after {edge} cycles: {len(run.outputs)} of {want} "
                                   f"outputs, {len(queue)} inputs not sent")
            in_reset = reset_at is not None and edge + 1 == reset_at
            ctx.set(cd.rst, 1 if in_reset else 0)
            ctx.set(i_port.valid, 1 if queue and gap == 0 else 0)
            if queue:
                ctx.set(i_port.payload, queue[0])
            ctx.set(o_port.ready, 1 if stalls.ready() else 0)
            sampled = await ctx.tick().sample(i_port.valid, i_port.ready, o_port.valid,
                                              o_port.ready, o_port.payload,
                                              *[s for pair in taps.values() for s in pair])
            edge += 1
            iv, ir, ov, orr, op = sampled[2:7]
            tap_values = sampled[7:]
            if in_reset:
                reset_done = True
                gap = stalls.gap()
                run.outputs.clear()
                run.out_edges.clear()
                run.in_edges.clear()
                for name in run.taps:
                    run.taps[name].clear()
                queue = list(input_after_reset or [])
                continue
            if iv and ir:
                run.in_edges.append(edge)
                queue.pop(0)
                gap = stalls.gap()
            elif gap:
                gap -= 1
            if ov and orr:
                run.outputs.append(int(op))
                run.out_edges.append(edge)
            for t, name in enumerate(taps):
                if tap_values[2 * t]:
                    run.taps[name].append((edge, int(tap_values[2 * t + 1])))
        run.cycles = edge

    sim = simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return run
