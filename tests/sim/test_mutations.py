"""Mutation check of the checkers (issue 20): one fault at a time is injected into the design
(a flipped weight bit, a threshold off by one, a dropped ready, two output bits swapped), and
every checker that applies must fail on it: ``verify`` on each simulator, ``verify
--netlist`` on Yosys' netlists and ``prove`` on the RTL and (``--netlist``) on the netlists, on
a network small enough for a quick proof. A checker that cannot fail is worth nothing."""

import numpy as np
import pytest

from bnnflow.model.random_net import random_model
from bnnflow.sim.prove import proof_targets, prove_target
from bnnflow.sim.prove_netlist import netlist_target
from bnnflow.sim.verify import run_verify
from tests.sim.test_faults import flipped_weight, threshold_off_by_one

#: (simulator, netlist family or None); the last three (slow) build with Verilator or simulate
#: an ECP5 netlist.
CHECKERS = [("amaranth", None), ("icarus", None), ("icarus", "ice40"),
            ("verilator-direct", None), ("verilator", None), ("icarus", "ecp5")]
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


#: Checkers that run some faults, not all four (suite time: each case costs 12-23 s).
#: cocotb + Verilator runs the cocotb bench that cocotb + Icarus runs on every fault; its fault
#: is tests/sim/test_faults.py's threshold off by one (naming image and layer), as
#: verilator-direct's data fault is tests/sim/test_direct.py's. The netlists: the iCE40 one on a
#: threshold and a dropped ready (its flipped weight, in block RAM, is tests/sim/
#: test_netlist.py's), the ECP5 one, the same path with other cell models, on a flipped weight
#: and a dropped ready.
SPARSE = {("verilator", None): (),
          ("verilator-direct", None): ("flipped_weight", "drop_ready", "swap_output"),
          ("icarus", "ice40"): ("threshold_off_by_one", "drop_ready"),
          ("icarus", "ecp5"): ("flipped_weight", "drop_ready")}
CASES = [pytest.param(fault, *checker, id=f"{fault}-{checker[0]}-{checker[1]}",
                      marks=[pytest.mark.slow] if checker in CHECKERS[3:] else [])
         for fault in FAULTS for checker in CHECKERS if fault in SPARSE.get(checker, FAULTS)]


@pytest.mark.parametrize(("fault", "simulator", "netlist"), CASES)
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


#: The network of the proofs: a hidden layer (thresholds) and an output layer, pipeline 1.
PROVE_WIDTHS, PROVE_FOLD, PROVE_SLOW_SECOND = [6, 4, 3], "2x3,3x2", "4x6,1x4"


def _prove_options(fault, model):
    bits = np.random.default_rng(0).integers(0, 2, size=(64, PROVE_WIDTHS[0]), dtype=np.uint8)
    if fault == "flipped_weight":
        return {"folding": PROVE_FOLD, "hardware_model": flipped_weight(model, bits)[0]}
    if fault == "threshold_off_by_one":
        return {"folding": PROVE_FOLD, "hardware_model": threshold_off_by_one(model, bits)[0]}
    if fault == "drop_ready":
        return {"folding": PROVE_SLOW_SECOND, "fault": ("drop_ready", 0)}
    return {"folding": PROVE_FOLD, "fault": ("swap_output", 0, 3)}


@pytest.mark.parametrize("fault", FAULTS)
def test_prove_fails_on_every_injected_fault(fault):
    model = random_model(PROVE_WIDTHS, seed=1)
    network = proof_targets(model, pipeline=1, **_prove_options(fault, model))[-1]
    result = prove_target(network, induction=False)
    assert result.status == "failed" and result.failed == ["reference"]
    assert result.step is not None


@pytest.mark.parametrize(("fault", "family"), [
    ("flipped_weight", "ice40"),
    *(pytest.param(fault, "ice40", marks=pytest.mark.slow) for fault in FAULTS[1:]),
    pytest.param("drop_ready", "ecp5", marks=pytest.mark.slow)])
def test_prove_on_the_netlist_fails_on_every_injected_fault(fault, family):
    # prove --netlist: the fault is in the design Yosys maps; its netlist must fail too (every
    # fault on iCE40; on ECP5, with its weight-ROM register, one).
    model = random_model(PROVE_WIDTHS, seed=1)
    network = proof_targets(model, pipeline=1, rom_register=family == "ecp5",
                            **_prove_options(fault, model))[-1]
    result = prove_target(netlist_target(network, family), induction=False)
    assert result.status == "failed" and result.failed == ["reference"]
    assert result.step is not None


@pytest.mark.parametrize("folding", [PROVE_FOLD, PROVE_SLOW_SECOND])
def test_prove_passes_the_network_without_a_fault(folding):
    model = random_model(PROVE_WIDTHS, seed=1)
    network = proof_targets(model, folding, pipeline=1)[-1]
    result = prove_target(network, induction=False)
    assert result.status == "bounded" and result.covered_at < result.depth
