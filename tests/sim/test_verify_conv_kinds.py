# amaranth: UnusedElaboratable=no
"""``verify`` on conv networks with the kinds of issue 18: ternary conv and dense layers,
8-bit pixels into the first conv and 2-bit activations (pools of levels), bit-exact against
the golden model on Amaranth's simulator (odd sizes, foldings, pipelines, stalls) and on the
Verilog simulators; the proofs of a ternary n-bit conv layer's window unit and MVTU."""


import numpy as np
import pytest

from bnnflow.model.random_net import random_conv_model
from bnnflow.sim.prove import proof_targets, prove_target
from bnnflow.sim.verify import run_verify
from tests.sim.test_verify_conv import flipped_conv_weight

#: (input map, stages, classes)
NETS = {
    "a": ((7, 6, 2), [("conv", 5, 3), ("pool", 2), ("dense", 6)], 3),
    "b": ((9, 8, 3), [("conv", 4, 3), ("conv", 3, 2), ("pool", 3), ("dense", 5)], 4),
}
KINDS = {"ternary": {"ternary": True}, "8-bit": {"input_bits": 8},
         "ternary 8-bit": {"ternary": True, "input_bits": 8}, "2-bit act": {"act_bits": 2}}


def _images(model, count, seed):
    top = (1 << model.input.bits) - 1
    return np.random.default_rng(seed).integers(0, top + 1, size=(count, model.input.width),
                                                dtype=np.uint8)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(("net", "fold", "pipeline", "stall", "seed"), [
    ("a", None, 0, 0.0, 0), ("a", "auto:60", 1, 0.4, 1), ("b", "auto:150", 0, 0.3, 2),
    ("b", "4x9,3x4,3x1,5x3,4x5", 1, 0.2, 3),
])
def test_new_conv_kinds_match_golden_for_foldings_and_stalls(kind, net, fold, pipeline,
                                                             stall, seed):
    model = random_conv_model(*NETS[net], seed=seed, **KINDS[kind])
    kwargs = {}
    if fold is not None and fold.startswith("auto:"):
        kwargs = {"fold": "auto", "ii": int(fold[5:])}
    elif fold is not None:
        kwargs = {"fold": fold}
    rep = run_verify(model, simulator="amaranth", inputs=_images(model, 6, seed),
                     pipeline=pipeline, stall=stall, seed=seed, show_progress=False, **kwargs)
    assert rep["passed"] and rep["mismatches"] == 0
    assert rep["ii_measured"] == rep["ii_expected"]
    assert rep["latency_measured"] == rep["latency_expected"] > 0


@pytest.mark.parametrize("simulator", ["verilator-direct", "icarus"])
def test_ternary_8_bit_conv_network_on_a_verilog_simulator(simulator, build_root):
    model = random_conv_model(*NETS["a"], seed=5, ternary=True, input_bits=8)
    rep = run_verify(model, simulator=simulator, inputs=_images(model, 8, 5), fold="auto",
                     ii=60, pipeline=1, stall=0.3, seed=2, reset_mid_stream=True,
                     show_progress=False, build_root=build_root)
    assert rep["passed"] and rep["mismatches"] == 0 and rep["timing_mismatches"] == 0
    assert rep["reset_mid_stream"]["applied"]


@pytest.mark.slow    # about 100 s of z3
def test_ternary_n_bit_conv_layer_proofs_hold():
    # 2-bit inputs keep the solver quick; the logic is the same for 8 bits. A 3x2 image (two
    # output rows of one column) keeps the window's check at 3 s, against 90 s for 3x3; the
    # binary 3x3 window is proved in test_prove.
    model = random_conv_model((3, 2, 1), [("conv", 2, 2), ("dense", 3)], 2, seed=1,
                              ternary=True, input_bits=2)
    targets = proof_targets(model, "1x2,3x2,2x3")
    names = [t.name for t in targets]
    window = next(t for t in targets if "window" in t.name)
    mvtu = next(t for t in targets if "mvtu (ternary_conv2d" in t.name)
    assert window.in_width == 6 * 2 and mvtu.in_width == 4 * 2, names
    for target in (window, mvtu):
        result = prove_target(target, induction=False)
        assert result.status == "bounded", (target.name, result)


def test_a_flipped_weight_is_named_in_an_8_bit_2_bit_conv_network():
    # The debug-tap rerun packs 8-bit inputs and 2-bit taps as the main run does.
    model = random_conv_model(*NETS["a"], seed=7, input_bits=8, act_bits=2)
    x = _images(model, 6, 7)
    hw, image, element = flipped_conv_weight(model, x)
    rep = run_verify(model, simulator="amaranth", inputs=x, hardware_model=hw, stall=0.3,
                     seed=1, show_progress=False)
    first = rep["first_mismatch"]
    assert not rep["passed"] and (first["image"], first["layer"]) == (image, "conv0")
    channels, cols = model.layers[0].out_shape[2], model.layers[0].out_shape[1]
    row, col = divmod(element // channels, cols)
    assert first["layer_detail"]["pixel"] == [row, col]
    assert first["layer_detail"]["channel"] == element % channels
