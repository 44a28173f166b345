"""The simulator-independent bench: driver, monitor, timing measurement and scoreboard.

A software pipeline stands in for the hardware here, so these tests run without a simulator.
"""

import numpy as np
import pytest

from bnnflow.sim.stimulus import (
    OutputLayout,
    Scoreboard,
    StreamBench,
    bits_to_int,
    int_to_bits,
)


class SoftPipe:
    """A stream FIFO of ``depth`` entries whose items appear ``latency`` edges after entry.

    It accepts at most one input every ``ii`` edges; ``drop`` > 0 makes it lose every
    ``drop``-th input vector.
    """

    def __init__(self, latency, depth=2, ii=1, drop=0):
        self.latency, self.depth, self.ii, self.drop = latency, depth, ii, drop
        self.queue = []
        self.accepted = 0
        self.next_accept = 0

    def run(self, bench):
        cycle = 0
        while not bench.done:
            valid, payload, ready = bench.drive()
            i_ready = int(len(self.queue) < self.depth and cycle >= self.next_accept)
            o_valid = int(bool(self.queue) and self.queue[0][0] <= cycle)
            o_payload = self.queue[0][1] if o_valid else 0
            bench.edge(valid, i_ready, o_valid, o_payload, [(valid and i_ready, payload)])
            if o_valid and ready:
                self.queue.pop(0)
            if valid and i_ready:
                self.accepted += 1
                self.next_accept = cycle + self.ii
                if not (self.drop and self.accepted % self.drop == 0):
                    self.queue.append((cycle + self.latency, payload))
            cycle += 1


def make_bench(n=40, stall=0.0, seed=0, **kw):
    inputs = list(range(100, 100 + n))
    return StreamBench(inputs, inputs[:8], stall=stall, seed=seed, taps=1, **kw), inputs


@pytest.mark.parametrize("width", [1, 7, 37, 130])
def test_bits_round_trip_lsb_first(width):
    bits = np.random.default_rng(width).integers(0, 2, size=width, dtype=np.uint8)
    value = bits_to_int(bits)
    assert value == sum(int(b) << i for i, b in enumerate(bits))
    assert np.array_equal(int_to_bits(value, width), bits)


@pytest.mark.parametrize(("latency", "ii"), [(1, 1), (3, 1), (9, 1), (4, 3), (7, 7)])
def test_stall_free_timing_phase_measures_latency_and_ii(latency, ii):
    bench, inputs = make_bench()
    SoftPipe(latency, depth=latency + 1, ii=ii).run(bench)
    assert bench.timing() == (latency, ii)
    assert bench.outputs["timing"] == inputs[:8]
    assert bench.outputs["main"] == inputs


@pytest.mark.parametrize("stall", [0.2, 0.5, 0.8])
def test_stalls_keep_order_and_lose_nothing(stall):
    bench, inputs = make_bench(stall=stall, seed=5)
    SoftPipe(2).run(bench)
    assert bench.outputs["main"] == inputs
    assert bench.tap_data[0] == inputs
    assert not any(bench.stuck.values())
    # Gaps and back-pressure make the main phase longer than a stall-free one.
    edges = bench.out_edges["main"]
    assert edges[-1] - edges[0] > len(inputs) - 1


def test_same_seed_same_cycles_different_seed_different_cycles():
    runs = []
    for seed in (1, 1, 2):
        bench, _ = make_bench(stall=0.4, seed=seed)
        SoftPipe(2).run(bench)
        runs.append((bench.in_edges["main"], bench.out_edges["main"], bench.cycles))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_lost_vectors_end_the_phase_by_timeout_with_missing_outputs():
    bench, inputs = make_bench(stall=0.3, max_idle=50)
    SoftPipe(2, drop=5).run(bench)
    assert bench.stuck["main"]
    assert len(bench.outputs["main"]) < len(inputs)


@pytest.mark.parametrize("stall", [-0.1, 1.0, 1.5])
def test_stall_outside_unit_interval_is_refused(stall):
    with pytest.raises(ValueError, match=r"stall must be a probability in \[0, 1\), not"):
        StreamBench([1], [1], stall=stall)


def test_scoreboard_reports_wrong_and_missing_outputs():
    layout = OutputLayout(class_width=2, popcount_width=3, classes=3)
    classes = np.array([2, 0, 1])
    popcounts = np.array([[1, 2, 5], [4, 4, 0], [0, 3, 3]])

    def payload(cls, pcs):
        return cls | sum(p << (2 + 3 * c) for c, p in enumerate(pcs))

    board = Scoreboard(classes, popcounts, layout, image_ids=[10, 11, 12])
    good = [payload(2, [1, 2, 5]), payload(0, [4, 4, 0])]
    assert layout.decode(good[1]) == (0, [4, 4, 0])
    mismatches = board.check([good[0], payload(0, [4, 5, 0])])
    assert [(m.image, m.actual) for m in mismatches] == [
        (11, {"class": 0, "popcounts": [4, 5, 0]}), (12, None)]
    assert mismatches[0].expected == {"class": 0, "popcounts": [4, 4, 0]}
    assert board.check([*good, payload(1, [0, 3, 3])]) == []
