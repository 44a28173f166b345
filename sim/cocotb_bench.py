"""The cocotb test bench: runs inside Verilator or Icarus, started by :mod:`.cocotb_sim`.

It gets its parameters from a JSON job file named by the ``BNNFLOW_SIM_JOB`` environment
variable (written by the Python side): the input transfers of both phases and how many make
an image (``per_image``: ``H * W`` pixels for a conv network), the stall probability and seed,
the idle timeout, the mid-stream reset (``reset_after``, ``min_latency``; absent or null:
none), the transfers per image of each debug tap (``tap_counts``), the golden classes and
popcounts, the output layout, the debug taps to record, and where to write results and progress.

Each clock cycle the bench, at the falling edge, applies what the shared driver and monitor
(:class:`bnnflow.sim.stimulus.StreamBench`) ask for, waits for the combinational logic to settle
(``ReadOnly``) and hands the values that the next rising edge will sample back to the bench.
At the end the shared :class:`~bnnflow.sim.scoreboard.Scoreboard` compares the outputs with the
golden model; the test fails on any mismatch or stale output after a mid-stream reset, after
writing everything it recorded to the results file.
"""

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from cocotb.types import Logic

from bnnflow.sim.scoreboard import OutputLayout, Scoreboard
from bnnflow.sim.stimulus import StreamBench

JOB_ENV = "BNNFLOW_SIM_JOB"
CLOCK_NS = 10


def _write_json(path, data):
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _as_int(handle):
    """The value of a signal as an unsigned int; X/Z bits read as -1 (never a valid value)."""
    value = handle.value
    try:
        return int(value) if isinstance(value, Logic) else value.to_unsigned()
    except ValueError:
        return -1


class _Progress:
    """Writes the number of outputs received to a file, at most every 0.2 s."""

    def __init__(self, path):
        self.path = path
        self.last = 0.0

    def __call__(self, count, force=False):
        now = time.monotonic()
        if self.path and (force or now - self.last > 0.2):
            self.last = now
            _write_json(self.path, {"outputs": count})


@cocotb.test()
async def stream_matches_golden(dut):
    """Stream every image through the design and compare each output with the golden model."""
    job = json.loads(Path(os.environ[JOB_ENV]).read_text())
    progress = _Progress(job.get("progress"))
    tap_handles = [(getattr(dut, valid), getattr(dut, data)) for valid, data in job["taps"]]
    bench = StreamBench([int(v, 16) for v in job["main_inputs"]],
                        [int(v, 16) for v in job["timing_inputs"]],
                        stall=job["stall"], seed=job["seed"], max_idle=job["max_idle"],
                        taps=len(tap_handles), progress=progress,
                        reset_after=job.get("reset_after"),
                        min_latency=job.get("min_latency", 1),
                        per_image=job.get("per_image", 1), tap_counts=job.get("tap_counts"),
                        needed=job.get("needed"))

    Clock(dut.clk, CLOCK_NS, unit="ns").start(start_high=False)
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.i__payload.value = 0
    dut.o__ready.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    i_valid, i_payload, i_ready = dut.i__valid, dut.i__payload, dut.i__ready
    o_valid, o_payload, o_ready = dut.o__valid, dut.o__payload, dut.o__ready
    rst, rst_now = dut.rst, 0
    loop_started = time.monotonic()
    while not bench.done:
        valid, payload, ready, reset = bench.drive()
        if reset != rst_now:    # written only when it changes: a handle write costs time
            rst.value = rst_now = reset
        i_valid.value = valid
        i_payload.value = payload
        o_ready.value = ready
        await ReadOnly()
        out_valid = _as_int(o_valid)
        taps = []
        for tv, td in tap_handles:
            tap_valid = _as_int(tv)
            taps.append((tap_valid, _as_int(td) if tap_valid == 1 else 0))
        bench.edge(valid, _as_int(i_ready), out_valid == 1,
                   _as_int(o_payload) if out_valid == 1 and ready else 0, taps)
        await FallingEdge(dut.clk)
    loop_seconds = time.monotonic() - loop_started
    progress(len(bench.outputs["main"]), force=True)

    expected = job["expected"]
    layout = OutputLayout(**job["layout"])
    results = bench.to_dict()
    counts = {}
    for phase in ("timing", "main"):
        board = Scoreboard(np.array(expected[phase]["classes"], dtype=np.int64),
                           np.array(expected[phase]["popcounts"], dtype=np.int64).reshape(
                               len(expected[phase]["classes"]), layout.classes), layout)
        counts[phase] = len(board.check(bench.outputs[phase]))
    counts["stale"] = len(bench.stale)
    results["scoreboard_mismatches"] = counts
    results["loop_seconds"] = loop_seconds
    _write_json(job["results"], results)
    assert counts["main"] == 0 and counts["timing"] == 0 and counts["stale"] == 0, (
        f"{counts['main']} of {len(expected['main']['classes'])} outputs differ from the golden "
        f"model ({counts['timing']} in the timing phase, {counts['stale']} stale outputs after "
        f"the reset)")
