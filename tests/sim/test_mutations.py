"""Mutation check of the checkers (issue 20): one fault at a time is injected into the design
(a flipped weight bit, a threshold off by one, a dropped ready, two output bits swapped), and
every checker that applies must fail on it: ``verify`` on each simulator and ``verify
--netlist`` on Yosys' netlists. A checker that cannot fail is worth nothing. (``prove``, the
formal checker of the issue, does not exist yet.)"""

import pytest

from bnnflow.sim.verify import run_verify
from tests.sim.test_faults import flipped_weight, threshold_off_by_one

#: (simulator, netlist family or None); the slow ones build with Verilator.
CHECKERS = [("amaranth", None), ("icarus", None), ("icarus", "ice40"),
            pytest.param("verilator-direct", None, marks=pytest.mark.slow),
            pytest.param("verilator", None, marks=pytest.mark.slow),
            pytest.param("icarus", "ecp5", marks=pytest.mark.slow)]
FAULTS = ["flipped_weight", "threshold_off_by_one", "drop_ready", "swap_output"]


def _fault_options(fault, net, bits):
    """``run_verify`` options that put ``fault`` into the hardware."""
    if fault == "flipped_weight":
        return {"fold": net.fold, "hardware_model": flipped_weight(net.model, bits)[0]}
    if fault == "threshold_off_by_one":
        return {"fold": net.fold, "hardware_model": threshold_off_by_one(net.model, bits)[0]}
    if fault == "drop_ready":
        # Layer 1 is the slowest, so the stream after layer 0 loses vectors.
        return {"fold": net.slow_second_fold, "fault": ("drop_ready", 0)}
    # Bit 0 of the class and the lowest bit of the first popcount.
    return {"fold": net.fold, "fault": ("swap_output", 0, 3)}


@pytest.mark.parametrize(("simulator", "netlist"), CHECKERS)
@pytest.mark.parametrize("fault", FAULTS)
def test_every_checker_fails_on_every_injected_fault(fault, simulator, netlist, net, input_bits,
                                                     build_root):
    bits = input_bits[:10]
    rep = run_verify(net.model, simulator=simulator, inputs=bits, pipeline=net.pipeline,
                     stall=0.3, seed=1, netlist=netlist, build_root=build_root,
                     **_fault_options(fault, net, bits))
    assert not rep["passed"] and rep["mismatches"] > 0
    assert rep["first_mismatch"] is not None


@pytest.mark.parametrize(("simulator", "netlist"), CHECKERS[:3])
def test_the_same_checkers_pass_the_design_without_a_fault(simulator, netlist, net, input_bits,
                                                          build_root):
    rep = run_verify(net.model, simulator=simulator, inputs=input_bits[:10], fold=net.fold,
                     pipeline=net.pipeline, stall=0.3, seed=1, netlist=netlist,
                     build_root=build_root)
    assert rep["passed"] and rep["mismatches"] == 0
    assert rep["timing_ok"]
