"""Run the shared stream bench on an Amaranth component in Amaranth's own simulator.

The testbench (``add_testbench``, ``ctx.set``, ``ctx.tick().sample``) sets the values the bench
asks for, then samples ``i.ready``, ``o.valid``, ``o.payload`` and the debug taps *at* the next
edge, and hands them to :meth:`bnnflow.sim.stimulus.StreamBench.edge`.

When the bench may reset the design in the middle of the stream (``bench.reset_after``), the
component is simulated inside a module that declares its ``sync`` clock domain, so that the
testbench can drive the domain's synchronous reset, which is the ``rst`` port of the Verilog
that the other back ends simulate (in the VCD the design is then one level down, under
``dut``). Without it the component is the toplevel, as before.
"""

import time

from .backend import NullProgress, SimResult, generate, tap_ports
from .stimulus import StreamPlan

__all__ = ["CLOCK_PERIOD", "run_bench", "simulate"]

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
    from amaranth.hdl import ClockDomain, Module

    from ..fileio import atomic_path
    from ..hw.testbench import simulator

    tap_signals = [(getattr(top, v), getattr(top, d)) for v, d in taps]
    flat_taps = [s for pair in tap_signals for s in pair]
    toplevel, rst = top, None
    if bench.reset_after is not None:
        toplevel = Module()
        toplevel.domains.sync = domain = ClockDomain("sync")
        toplevel.submodules.dut = top
        rst = domain.rst

    async def testbench(ctx):
        while not bench.done:
            valid, payload, ready, reset = bench.drive()
            if rst is not None:
                ctx.set(rst, reset)
            ctx.set(top.i.valid, valid)
            ctx.set(top.i.payload, payload)
            ctx.set(top.o.ready, ready)
            _, _, i_ready, o_valid, o_payload, *tap_values = await ctx.tick().sample(
                top.i.ready, top.o.valid, top.o.payload, *flat_taps)
            pairs = list(zip(tap_values[0::2], tap_values[1::2], strict=True))
            bench.edge(valid, i_ready, o_valid, o_payload, pairs)

    sim = simulator(toplevel, fix="fold it with fewer PE x SIMD per layer (--fold, or --fold "
                                  "auto --ii CYCLES), or simulate it with --sim verilator-direct")
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


def simulate(design, job, progress=None):
    """The ``amaranth`` back end: elaborate ``design.component()`` and run ``job`` on it.

    Parameters
    ----------
    design : HwDesign
    job : SimJob
    progress : NullProgress-like or None

    Returns
    -------
    SimResult
        ``build_seconds`` is 0 (nothing is built; elaboration counts in no figure) and
        ``sim_seconds`` the wall time of :func:`run_bench`.
    """
    progress = progress or NullProgress()
    build = progress.task(f"{job.label}: elaborate (amaranth)", total=1)
    top, sidecar = generate(design.component, job.debug_taps)
    progress.update(build, completed=1)
    run = progress.task(f"{job.label}: simulate (amaranth)", total=len(job.main_inputs))
    taps = tap_ports(design, job.debug_taps)
    plan = StreamPlan.from_sidecar(sidecar, job.main_inputs, job.timing_inputs, job.stall,
                                   job.debug_taps)
    bench = plan.bench(stall=job.stall, seed=job.seed,
                       progress=lambda n: progress.update(run, completed=n),
                       reset_after=job.reset_after)
    started = time.monotonic()
    loop_seconds = run_bench(top, bench, taps=taps, vcd=job.vcd)
    seconds = time.monotonic() - started
    progress.update(run, completed=len(bench.outputs["main"]))
    return SimResult.from_bench(bench.to_dict(), sidecar=sidecar, loop_seconds=loop_seconds,
                                sim_seconds=seconds, build_seconds=0.0)
