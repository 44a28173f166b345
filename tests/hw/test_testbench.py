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
