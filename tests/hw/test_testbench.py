"""The stall model shared by every bench (bnnflow.hw.testbench.Stalls): seeded, geometric gaps,
independent ready draws, the same doubles as the C++ harness's precomputed decisions."""

import numpy as np
import pytest

from bnnflow.hw.testbench import Stalls
from bnnflow.sim.direct import stall_decisions


@pytest.mark.parametrize("p", [0.2, 0.6])
def test_gaps_are_geometric_and_ready_has_the_asked_probability(p):
    stalls = Stalls(3, p, p)
    gaps = np.array([stalls.gap() for _ in range(20000)])
    ready = np.array([stalls.ready() for _ in range(20000)])
    assert abs(gaps.mean() - p / (1 - p)) < 0.05 * (1 + p / (1 - p))
    assert abs(ready.mean() - (1 - p)) < 0.02


def test_same_seed_same_stalls_and_the_direct_harness_draws_the_same():
    a, b = Stalls(7, 0.3, 0.3), Stalls(7, 0.3, 0.3)
    gaps = [a.gap() for _ in range(50)]
    assert gaps == [b.gap() for _ in range(50)]
    ready = [a.ready() for _ in range(200)]
    assert ready == [b.ready() for _ in range(200)]
    want_gaps, want_ready = stall_decisions(50, 200, 0.3, 7)
    assert gaps == want_gaps.tolist() and ready == want_ready.astype(bool).tolist()
    assert gaps != [Stalls(8, 0.3, 0.3).gap() for _ in range(50)]


def test_no_stalls_means_no_gaps_and_always_ready():
    stalls = Stalls(0, 0.0, 0.0)
    assert {stalls.gap() for _ in range(100)} == {0}
    assert all(stalls.ready() for _ in range(100))


@pytest.mark.parametrize(("p_gap", "p_busy", "message"), [
    (1.0, 0.0, r"p_gap must be a probability in \[0, 1\), not 1.0"),
    (0.0, -0.1, r"p_busy must be a probability in \[0, 1\), not -0.1"),
])
def test_bad_probabilities_are_refused(p_gap, p_busy, message):
    with pytest.raises(ValueError, match=message):
        Stalls(0, p_gap, p_busy)


def test_a_design_wider_than_pythons_int_string_limit_simulates():
    """Amaranth's simulator writes masks as decimal literals; a 15,000-bit register (an XNOR of
    a fully parallel 150 x 100 layer) has more than Python's default 4300 digits."""
    import sys

    from amaranth.hdl import Module
    from amaranth.lib import stream, wiring
    from amaranth.lib.wiring import In, Out

    from bnnflow.hw.testbench import simulate_stream

    width = 15000

    class Wide(wiring.Component):
        i: In(stream.Signature(width))
        o: Out(stream.Signature(width))

        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
            with m.If(self.o.ready):
                m.d.sync += self.o.valid.eq(0)
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(~self.i.payload)]
            return m

    payloads = [(1 << width) - 1 - 12345, 67890, 1 << (width - 1)]
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(4300)            # the default, whatever ran before
    try:
        run = simulate_stream(Wide(), payloads, seed=1, p_valid=0.7, p_ready=0.7)
    finally:
        sys.set_int_max_str_digits(old)
    assert run.outputs == [p ^ ((1 << width) - 1) for p in payloads]
