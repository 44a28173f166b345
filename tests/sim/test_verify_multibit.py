# amaranth: UnusedElaboratable=no
"""Multi-bit hidden activations in hardware: a layer with n-bit inputs (one popcount tree per
bit plane, weighted 2**b) matches the golden model on random networks at odd sizes, several
foldings, pipelines and stalls, and its proof holds."""

import re

import numpy as np
import pytest

from bnnflow.hw.mvtu import MVTU
from bnnflow.hw.verilog import generate
from bnnflow.model.random_net import random_model
from bnnflow.sim.prove import proof_targets, prove_target
from bnnflow.sim.verify import run_verify

CASES = [
    # widths, folding, activation bits, pipeline, seed
    ([13, 7, 5, 3], None, 2, 0, 1),
    ([13, 7, 5, 3], "3x5,2x3,3x5", 2, 1, 2),
    ([13, 7, 5, 3], "7x1,1x7,3x2", 3, 2, 3),
    ([21, 9, 4], "auto", 2, 1, 4),
    ([11, 6, 6, 3], "2x4,3x2,1x3", 4, 0, 5),
]


@pytest.mark.parametrize(("widths", "fold", "bits", "pipeline", "seed"), CASES)
def test_random_multibit_networks_match_the_golden_model(widths, fold, bits, pipeline, seed):
    model = random_model(widths, seed=seed, act_bits=bits)
    x = np.random.default_rng(seed).integers(0, 2, size=(30, widths[0]), dtype=np.uint8)
    rep = run_verify(model, simulator="amaranth", inputs=x, fold=fold,
                     ii=8 if fold == "auto" else None, pipeline=pipeline, stall=0.3, seed=seed,
                     show_progress=False)
    assert rep["passed"] and rep["mismatches"] == 0
    assert rep["ii_measured"] == rep["ii_expected"]
    assert rep["latency_measured"] == rep["latency_expected"]


@pytest.mark.slow
@pytest.mark.parametrize("simulator", ["icarus", "verilator-direct"])
def test_multibit_network_on_the_verilog_simulators(simulator, build_root):
    model = random_model([23, 12, 7, 5], seed=6, act_bits=2)
    x = np.random.default_rng(6).integers(0, 2, size=(60, 23), dtype=np.uint8)
    rep = run_verify(model, simulator=simulator, inputs=x, fold="5x6,3x4,5x7", pipeline=1,
                     stall=0.2, seed=3, show_progress=False, build_root=build_root)
    assert rep["passed"] and rep["mismatches"] == 0


def test_in_bits_widens_the_input_and_the_counts_and_is_checked():
    model = random_model([10, 4, 3], seed=0, act_bits=2)
    layer = model.layers[1]
    unit = MVTU(layer.weights, None, (3, 2), in_bits=2)
    assert len(unit.i.payload) == 8 and unit.count_width == 4    # 3 * 4 = 12 fits 4 bits
    with pytest.raises(ValueError, match="in_bits must be an integer in 1..8, not 0"):
        MVTU(layer.weights, None, (3, 2), in_bits=0)


def test_multibit_layer_proof_holds():
    model = random_model([5, 3, 2], seed=1, act_bits=2)
    targets = proof_targets(model, "3x5,2x3")
    for target in (targets[1], targets[-1]):
        result = prove_target(target, induction=False)
        assert result.status == "bounded", (target.name, result)


@pytest.mark.parametrize(("widths", "fold", "act_bits", "pipeline"), [
    ([9, 5, 3], None, 1, 0), ([13, 6, 4], "3x5,2x3", 1, 1), ([10, 7, 5, 3], "7x2,1x7,1x5", 2, 2)])
def test_random_8_bit_input_networks_match_the_golden_model(widths, fold, act_bits, pipeline):
    model = random_model(widths, seed=7, act_bits=act_bits, input_bits=8)
    x = np.random.default_rng(7).integers(0, 256, size=(30, widths[0]), dtype=np.uint8)
    rep = run_verify(model, simulator="amaranth", inputs=x, fold=fold, pipeline=pipeline,
                     stall=0.3, seed=7, show_progress=False)
    assert rep["passed"] and rep["mismatches"] == 0
    assert rep["latency_measured"] == rep["latency_expected"]


def _tokens(line):
    return len(re.findall(r"[\w$\\.]+|[^\s\w]", line))


def test_wide_8_bit_input_layer_keeps_verilog_lines_under_verilators_token_limit():
    # 784 pixels of 8 bits in one synapse fold: the XNOR once was one concatenation of 6272
    # replicated weight bits, a line over Verilator's 40000 preprocessor tokens.
    model = random_model([784, 6, 3], seed=2, input_bits=8)
    text, _ = generate(model, "1x784,1x6")
    assert max(_tokens(line) for line in text.splitlines()) < 20000


@pytest.mark.slow
def test_wide_8_bit_input_network_on_verilator(build_root):
    model = random_model([784, 6, 3], seed=2, input_bits=8)
    x = np.random.default_rng(2).integers(0, 256, size=(20, 784), dtype=np.uint8)
    rep = run_verify(model, simulator="verilator-direct", inputs=x, fold="1x784,1x6",
                     stall=0.2, seed=2, show_progress=False, build_root=build_root)
    assert rep["passed"] and rep["mismatches"] == 0


def test_inputs_out_of_range_are_one_line_errors():
    from bnnflow.errors import BnnflowError

    model = random_model([9, 5, 3], seed=7, input_bits=8)
    with pytest.raises(BnnflowError, match=r"inputs: inputs must be integers in 0..255 "
                                           r"\(8-bit pixels\)"):
        run_verify(model, simulator="amaranth", inputs=np.full((2, 9), 256),
                   show_progress=False)
