"""Run the shared stream bench on an Amaranth component in Amaranth's own simulator.

The testbench (``add_testbench``, ``ctx.set``, ``ctx.tick().sample``) sets the values the bench
asks for, then samples ``i.ready``, ``o.valid``, ``o.payload`` and the debug taps *at* the next
edge, and hands them to :meth:`bnnflow.sim.stimulus.StreamBench.edge`.
"""

import time

__all__ = ["CLOCK_PERIOD", "run_bench"]

#: 100 MHz; only the VCD's time axis depends on it.
CLOCK_PERIOD = 1e-8


def run_bench(top, bench, *, taps=(), vcd=None):
    """Simulate ``top`` (ports ``i``, ``o`` and the named taps) driven by ``bench``.

    Parameters
    ----------
    top : amaranth.lib.wiring.Component
        Stream input ``i`` and output ``o`` (see :class:`bnnflow.hw.top.BnnTop`).
    bench : StreamBench
    taps : sequence of (str, str)
        ``(valid_port, data_port)`` names of the debug taps to record, in layer order.
    vcd : path or None
        Write a VCD of the whole run there (through a temporary file, renamed at the end).

    Returns
    -------
    float
        Wall seconds of the simulation loop (elaboration excluded).
    """
    from amaranth.sim import Simulator

    from ..fileio import atomic_path

    tap_signals = [(getattr(top, v), getattr(top, d)) for v, d in taps]
    flat_taps = [s for pair in tap_signals for s in pair]

    async def testbench(ctx):
        while not bench.done:
            valid, payload, ready = bench.drive()
            ctx.set(top.i.valid, valid)
            ctx.set(top.i.payload, payload)
            ctx.set(top.o.ready, ready)
            _, _, i_ready, o_valid, o_payload, *tap_values = await ctx.tick().sample(
                top.i.ready, top.o.valid, top.o.payload, *flat_taps)
            pairs = list(zip(tap_values[0::2], tap_values[1::2], strict=True))
            bench.edge(valid, i_ready, o_valid, o_payload, pairs)

    sim = Simulator(top)
    sim.add_clock(CLOCK_PERIOD)
    sim.add_testbench(testbench)
    started = time.monotonic()
    if vcd is None:
        sim.run()
    else:
        with atomic_path(vcd) as tmp:
            with sim.write_vcd(str(tmp)):
                sim.run()
    return time.monotonic() - started
