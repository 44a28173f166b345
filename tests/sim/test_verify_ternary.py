# amaranth: UnusedElaboratable=no
"""Ternary hidden layers (weights in {-1, 0, +1}) in hardware: the MVTU with a mask beside its
weights matches the golden model on random networks at odd sizes, several foldings, pipelines
and stalls, and its proof holds."""

import numpy as np
import pytest

from bnnflow.hw.mvtu import MVTU
from bnnflow.model.artifact import BnnModel
from bnnflow.model.random_net import random_model
from bnnflow.model.ternary import TernaryDenseLayer
from bnnflow.sim.prove import proof_targets, prove_target
from bnnflow.sim.verify import run_verify

CASES = [
    # widths, folding, pipeline, rom_register, zeros, seed
    ([13, 7, 5, 3], None, 0, False, 0.3, 1),
    ([13, 7, 5, 3], "3x5,2x3,3x5", 1, False, 0.3, 2),
    ([13, 7, 5, 3], "7x1,1x7,3x5", 2, True, 0.5, 3),
    ([21, 11, 4], "auto", 1, False, 0.9, 4),
    ([9, 1, 2], "1x2,1x1", 0, True, 0.0, 5),
]


@pytest.mark.parametrize(("widths", "fold", "pipeline", "rom_register", "zeros", "seed"), CASES)
def test_random_ternary_networks_match_the_golden_model(widths, fold, pipeline, rom_register,
                                                        zeros, seed):
    model = random_model(widths, seed=seed, ternary=True, zeros=zeros)
    bits = np.random.default_rng(seed).integers(0, 2, size=(30, widths[0]), dtype=np.uint8)
    rep = run_verify(model, simulator="amaranth", inputs=bits, fold=fold,
                     ii=8 if fold == "auto" else None, pipeline=pipeline, stall=0.3, seed=seed,
                     show_progress=False, rom_register=rom_register)
    assert rep["passed"] and rep["mismatches"] == 0
    assert rep["ii_measured"] == rep["ii_expected"]
    assert rep["latency_measured"] == rep["latency_expected"]


@pytest.mark.slow
@pytest.mark.parametrize("simulator", ["icarus", "verilator-direct"])
def test_ternary_network_on_the_verilog_simulators(simulator, build_root):
    model = random_model([23, 12, 7, 5], seed=6, ternary=True)
    bits = np.random.default_rng(6).integers(0, 2, size=(60, 23), dtype=np.uint8)
    rep = run_verify(model, simulator=simulator, inputs=bits, fold="5x6,3x4,5x7", pipeline=1,
                     stall=0.2, seed=3, show_progress=False, build_root=build_root)
    assert rep["passed"] and rep["mismatches"] == 0


def test_mask_rom_is_twice_as_wide_and_mask_is_checked():
    model = random_model([10, 4, 2], seed=0, ternary=True)
    layer = model.layers[0]
    unit = MVTU.from_layer(layer, (2, 5), _options())
    assert unit.sidecar()["rom_bits"] == 2 * 2 * 2 * 2 * 5
    with pytest.raises(ValueError, match=r"mask must be an array of 0/1 of the weights' shape "
                                         r"\(4, 10\)"):
        MVTU(layer.weights, layer.thresholds, (2, 5), mask=np.ones((4, 9)))


def _flipped_mask(model):
    """The model with the first mask bit of layer 0 whose flip changes the layer's outputs."""
    layer = model.layers[0]
    x = np.array([[(v >> b) & 1 for b in range(layer.in_width)]
                  for v in range(2 ** layer.in_width)], dtype=np.uint8)
    for n, k in np.ndindex(layer.mask.shape):
        mask = layer.mask.copy()
        mask[n, k] ^= 1
        thresholds = np.minimum(layer.thresholds, mask.sum(axis=1)[:, None] + 1)
        flipped = TernaryDenseLayer("fc0", layer.weights & mask, mask, thresholds)
        if not np.array_equal(flipped.forward(x)[0], layer.forward(x)[0]):
            return BnnModel([flipped, *model.layers[1:]], model.input)
    raise AssertionError("no visible mask flip")


def test_ternary_layer_proof_holds_and_a_flipped_mask_bit_fails_it():
    model = random_model([6, 3, 2], seed=1, ternary=True)
    target = proof_targets(model, "3x2,2x3")[0]
    assert prove_target(target, induction=False).status == "bounded"
    target = proof_targets(model, "3x2,2x3", hardware_model=_flipped_mask(model))[0]
    result = prove_target(target, induction=False)
    assert result.status == "failed" and result.failed == ["reference"]


def _options():
    from bnnflow.hw.units import UnitOptions

    return UnitOptions()


@pytest.mark.parametrize(("widths", "fold", "act_bits", "input_bits"), [
    ([13, 7, 5, 3], "3x5,2x3,3x5", 2, 1), ([9, 6, 4], None, 2, 8),
    ([10, 7, 5, 3], "7x2,1x7,1x5", 1, 8)])
def test_ternary_with_multibit_activations_and_8_bit_inputs(widths, fold, act_bits,
                                                            input_bits):
    model = random_model(widths, seed=3, ternary=True, act_bits=act_bits,
                         input_bits=input_bits)
    x = np.random.default_rng(1).integers(0, 1 << input_bits, size=(30, widths[0]),
                                          dtype=np.uint8)
    rep = run_verify(model, simulator="amaranth", inputs=x, fold=fold, pipeline=1, stall=0.3,
                     seed=2, show_progress=False)
    assert rep["passed"] and rep["mismatches"] == 0
    assert rep["latency_measured"] == rep["latency_expected"]
