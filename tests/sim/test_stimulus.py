"""The simulator-independent bench: driver, monitor, timing measurement and scoreboard.

A software pipeline stands in for the hardware here, so these tests run without a simulator.
"""

import numpy as np
import pytest

from bnnflow.model.conventions import pack_int
from bnnflow.sim.stimulus import StreamBench, int_to_bits


class SoftPipe:
    """A stream FIFO of ``depth`` entries whose items appear ``latency`` edges after entry.

    It accepts at most one input every ``ii`` edges; ``drop`` > 0 makes it lose every
    ``drop``-th input vector. ``rst`` empties it, unless ``ignore_reset`` (a design whose
    reset does not reach its data path).
    """

    def __init__(self, latency, depth=2, ii=1, drop=0, ignore_reset=False):
        self.latency, self.depth, self.ii, self.drop = latency, depth, ii, drop
        self.ignore_reset = ignore_reset
        self.queue = []
        self.accepted = 0
        self.next_accept = 0
        self.resets = []

    def run(self, bench):
        cycle = 0
        while not bench.done:
            valid, payload, ready, rst = bench.drive()
            i_ready = int(len(self.queue) < self.depth and cycle >= self.next_accept)
            o_valid = int(bool(self.queue) and self.queue[0][0] <= cycle)
            o_payload = self.queue[0][1] if o_valid else 0
            bench.edge(valid, i_ready, o_valid, o_payload, [(valid and i_ready, payload)])
            if rst:
                self.resets.append((cycle, [p for _, p in self.queue]))
                if not self.ignore_reset:
                    self.queue, self.next_accept = [], 0
                cycle += 1
                continue
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
    value = pack_int(bits)
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


# -- reset in the middle of the main phase -----------------------------------------------------

@pytest.mark.parametrize(("stall", "seed"), [(0.0, 0), (0.3, 1), (0.7, 4)])
def test_reset_mid_stream_resends_the_images_in_flight_and_loses_nothing(stall, seed):
    bench, inputs = make_bench(stall=stall, seed=seed, reset_after=20, min_latency=6)
    pipe = SoftPipe(6, depth=3, ii=2)
    pipe.run(bench)
    info = bench.reset_info
    # One reset, at the edge the bench reports, with images inside the pipe (an output
    # waiting among them) and the next image offered but not taken.
    assert [edge for edge, _ in pipe.resets] == [info["edge"]]
    held = pipe.resets[0][1]
    assert held and held == inputs[info["restart"]:info["restart"] + len(held)]
    assert info["in_flight"] == len(held) and info["input_waiting"]
    assert bench.in_edges["main"][19] < info["edge"]
    assert sum(e < info["edge"] for e in bench.in_edges["main"]) >= 20
    # Every output in image order, none stale; the inputs resent start at the restart image.
    assert bench.outputs["main"] == inputs and bench.stale == []
    assert bench.tap_data[0] == inputs
    after = [e for e in bench.out_edges["main"] if e > info["edge"]]
    assert len(after) == len(inputs) - info["restart"]
    assert not any(bench.stuck.values())
    assert bench.to_dict()["reset"] == info


def test_reset_mid_stream_changes_nothing_before_the_hold():
    """The hold and the reset come after the N-th input: until then the run is the one without
    a reset, draw for draw."""
    plain, _ = make_bench(stall=0.4, seed=3)
    SoftPipe(5, depth=3).run(plain)
    reset, _ = make_bench(stall=0.4, seed=3, reset_after=15, min_latency=5)
    SoftPipe(5, depth=3).run(reset)
    nth = reset.in_edges["main"][14]
    for key in ("in_edges", "out_edges"):
        want = [e for e in getattr(plain, key)["main"] if e <= nth]
        assert [e for e in getattr(reset, key)["main"] if e <= nth] == want
    assert plain.reset_info is None and plain.to_dict()["reset"] is None
    assert reset.cycles > plain.cycles


def test_reset_after_the_last_image_went_in_still_fires():
    # Deep enough to take every image: no input is left to wait when the output does.
    bench, inputs = make_bench(n=12, reset_after=11, min_latency=4)
    SoftPipe(4, depth=20).run(bench)
    assert bench.reset_info["input_waiting"] is False
    assert bench.reset_info["in_flight"] >= 1
    assert bench.outputs["main"] == inputs and bench.stale == []


def test_outputs_left_over_from_before_the_reset_are_stale():
    bench, inputs = make_bench(stall=0.3, seed=2, reset_after=20, min_latency=6)
    pipe = SoftPipe(6, depth=3, ii=2, ignore_reset=True)
    pipe.run(bench)
    held = pipe.resets[0][1]
    assert held
    # The images held at the reset come out after it, before the resent ones could.
    assert [payload for _, payload in bench.stale] == held
    assert all(edge > bench.reset_info["edge"] for edge, _ in bench.stale)
    assert bench.to_dict()["stale"] == [list(s) for s in bench.stale]


@pytest.mark.parametrize(("min_latency", "stale"), [(6, False), (7, True)])
def test_an_output_sooner_than_min_latency_after_its_input_is_stale(min_latency, stale):
    bench, _ = make_bench(reset_after=20, min_latency=min_latency)
    SoftPipe(6, depth=3, ii=2).run(bench)
    assert bool(bench.stale) is stale


@pytest.mark.parametrize(("kw", "message"), [
    (dict(n=1, reset_after=1), "a reset mid-stream needs at least 2 images, not 1"),
    (dict(reset_after=0), r"reset_after must be an integer in 1\.\.39 \(images transferred "
                          r"before the reset, one left to send\), not 0$"),
    (dict(reset_after=40), r"reset_after must be an integer in 1\.\.39 .*, not 40$"),
    (dict(reset_after=True), r"reset_after must be an integer in 1\.\.39 .*, not True$"),
    (dict(reset_after=2.0), r"reset_after must be an integer in 1\.\.39 .*, not 2\.0$"),
    (dict(min_latency=0), r"min_latency must be a positive integer, not 0$"),
])
def test_bad_reset_arguments_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        make_bench(**kw)
