# amaranth: UnusedElaboratable=no
"""Whole network against the golden model: classes, popcounts, taps, II, latency, reset,
random stalls, mixed foldings, and the fault-injection hook."""

import numpy as np
import pytest

from bnnflow.hw.folding import auto_fold
from bnnflow.hw.testbench import fields_of, simulate_stream
from bnnflow.hw.top import BnnTop
from bnnflow.model import golden
from bnnflow.model.conventions import pack_int
from bnnflow.model.random_net import random_model


def images(model, count, seed):
    return np.random.default_rng(seed).integers(0, 2, size=(count, model.input.width))


def decode(top, outputs):
    classes = fields_of(outputs, 1, top.class_width)[:, 0]
    pops = fields_of(outputs, top.num_classes, top.popcount_width, lsb=top.class_width)
    return classes, pops


CASES = [
    ([37, 13, 11, 5], None, 0),
    ([37, 13, 11, 5], "5x8,4x13,2x4", 2),
    ([37, 13, 11, 5], "13x5,1x1,5x11", 1),
    ([16, 8, 3], "auto:6", 0),
    ([9, 1], None, 1),
    ([20, 4], "3x7", 3),
    # Memory-held inputs: chunks of 3 into SIMD 6 with a padded last fold, whole vectors
    # copied into an inner layer (PE 2 does not divide SIMD 3), single bits into SIMD 2.
    ([20, 7, 9, 3], "3x5,2x6,1x3", 1),
    ([13, 6, 5], "1x4,1x2", 2),
]


def build(widths, fold, pipeline, seed=0, **kw):
    model = random_model(widths, seed=seed)
    if isinstance(fold, str) and fold.startswith("auto:"):
        fold = auto_fold(model, int(fold[5:]))[0]
    return model, BnnTop(model, fold, pipeline, **kw)


@pytest.mark.parametrize(("widths", "fold", "pipeline"), CASES)
@pytest.mark.parametrize(("p_valid", "p_ready", "seed"), [(0.6, 0.5, 1), (0.9, 0.2, 2)])
def test_classes_popcounts_and_taps_match_golden_under_stalls(widths, fold, pipeline,
                                                              p_valid, p_ready, seed):
    model, top = build(widths, fold, pipeline, seed=seed, debug_taps=True)
    x = images(model, 6, seed)
    ref = golden.run(model, x)
    taps = {j: (getattr(top, f"tap_{j}_valid"), getattr(top, f"tap_{j}_data"))
            for j in range(len(model.layers))}
    run = simulate_stream(top, [pack_int(v) for v in x], seed=seed, p_valid=p_valid,
                          p_ready=p_ready, taps=taps)
    classes, pops = decode(top, run.outputs)
    assert np.array_equal(classes, ref.classes)
    assert np.array_equal(pops, ref.popcounts)
    for j, expected in enumerate(ref.layer_outputs()):
        mvtu = top.layers[j]
        got = fields_of([v for _, v in run.taps[j]], mvtu.n, mvtu.lane_width)
        assert np.array_equal(got, expected)


@pytest.mark.parametrize(("widths", "fold", "pipeline"), CASES)
def test_stall_free_ii_and_latency_equal_sidecar(widths, fold, pipeline):
    model, top = build(widths, fold, pipeline)
    x = images(model, 5, 0)
    sidecar = top.sidecar()
    # Latency of an image entering an idle network.
    single = simulate_stream(top, [pack_int(x[0])])
    assert single.out_edges[0] - single.in_edges[0] == sidecar["latency"] == top.latency
    # II: input always valid, output always ready.
    _, top = build(widths, fold, pipeline)
    run = simulate_stream(top, [pack_int(v) for v in x])
    assert np.array_equal(np.diff(run.out_edges), np.full(len(x) - 1, sidecar["ii"]))
    assert sidecar["ii"] == max(layer["cycles"] for layer in sidecar["layers"])
    classes, _ = decode(top, run.outputs)
    assert np.array_equal(classes, golden.classify(model, x))


def test_mixed_foldings_run_at_slowest_layer_without_bubbles():
    # Fast, slow, fast layers: the slow middle layer must be busy every cycle.
    model = random_model([24, 16, 16, 6], seed=4)
    top = BnnTop(model, [(16, 24), (4, 8), (6, 16)], 1, debug_taps=True)
    assert [m.cycles for m in top.layers] == [1, 8, 1]
    x = images(model, 10, 4)
    run = simulate_stream(top, [pack_int(v) for v in x],
                          taps={1: (top.tap_1_valid, top.tap_1_data)})
    assert np.array_equal(np.diff(run.out_edges), np.full(9, 8))
    assert np.array_equal(np.diff([e for e, _ in run.taps[1]]), np.full(9, 8))


@pytest.mark.parametrize(("widths", "fold", "reset_at"), [
    ([37, 13, 11, 5], "5x8,4x13,2x4", 20),
    ([37, 13, 11, 5], "5x8,4x13,2x4", 57),
    ([16, 8, 3], None, 3),
    ([20, 7, 9, 3], "3x5,2x6,1x3", 33),
    ([13, 6, 5], "1x4,1x2", 41),
])
def test_reset_mid_stream_leaves_design_ready_with_correct_results(widths, fold, reset_at):
    model, top = build(widths, fold, 1)
    before, after = images(model, 6, 5), images(model, 4, 6)
    run = simulate_stream(top, [pack_int(v) for v in before], reset_at=reset_at,
                          input_after_reset=[pack_int(v) for v in after], seed=3,
                          p_valid=0.8, p_ready=0.7)
    classes, pops = decode(top, run.outputs)
    ref = golden.run(model, after)
    assert np.array_equal(classes, ref.classes)
    assert np.array_equal(pops, ref.popcounts)


@pytest.mark.parametrize("layer", [0, 2])
def test_drop_ready_fault_loses_data_under_back_pressure(layer):
    model, top = build([37, 13, 11, 5], "13x37,4x13,5x11", 0, fault=("drop_ready", layer))
    x = images(model, 8, 1)
    with pytest.raises(RuntimeError, match="timeout"):
        simulate_stream(top, [pack_int(v) for v in x], seed=1, p_ready=0.3, max_cycles=3000)


def test_drop_ready_fault_is_invisible_without_back_pressure():
    # The argmax after layer 2 is always ready while o.ready is high.
    model, top = build([37, 13, 11, 5], "13x37,4x13,5x11", 0, fault=("drop_ready", 2))
    x = images(model, 4, 1)
    run = simulate_stream(top, [pack_int(v) for v in x])
    assert np.array_equal(decode(top, run.outputs)[0], golden.classify(model, x))


def test_output_port_layout_and_sidecar_keys():
    model, top = build([37, 13, 11, 5], "5x8,4x13,2x4", 2, debug_taps=True)
    sc = top.sidecar()
    assert set(sc) >= {"top", "ports", "bit_order", "output_layout", "layers", "ii", "latency",
                       "pipeline", "model_checksum", "taps", "bnnflow_version"}
    assert sc["output_layout"] == {"class": {"lsb": 0, "width": 3},
                                   "popcounts": {"lsb": 3, "width": 4, "count": 5}}
    assert sc["ports"]["o__payload"] == {"direction": "out", "width": 3 + 5 * 4}
    assert sc["ports"]["i__payload"] == {"direction": "in", "width": 37}
    assert sc["ports"]["tap_2_data"] == {"direction": "out", "width": 5 * 4}
    assert [t["valid"] for t in sc["taps"]] == ["tap_0_valid", "tap_1_valid", "tap_2_valid"]
    first = sc["layers"][0]
    assert (first["pe"], first["simd"], first["cycles"], first["padded_in"],
            first["padded_out"], first["weights_in"]) == (5, 8, 15, 3, 2, "rom")
    assert sc["pipeline"] == 2 and sc["model_checksum"].startswith("sha256:")


@pytest.mark.parametrize(("widths", "fold", "storage", "chunks", "waits"), [
    ([20, 7, 9, 3], "3x5,2x6,1x3", ["memory"] * 3, [(20, 3), (3, 9), (9, 12)], [3, 0, 2]),
    ([13, 6, 5], "1x4,1x2", ["memory"] * 2, [(13, 1), (1, 15)], [3, 0]),
    ([37, 13, 11, 5], "5x8,4x13,2x4", ["memory", "registers", "memory"],
     [(37, 13), (13, 4), (4, 20)], [4, 0, 0]),
    ([16, 8, 3], None, ["registers"] * 2, [(16, 8), (8, 3 * 4)], [0, 0]),
])
def test_sidecar_says_where_inputs_are_held_and_how_streams_are_cut(widths, fold, storage,
                                                                     chunks, waits):
    _, top = build(widths, fold, 0)
    layers = top.sidecar()["layers"]
    assert [layer["input_buffer"] for layer in layers] == storage
    assert [(layer["in_chunk"], layer["out_chunk"]) for layer in layers] == chunks
    assert [layer["accept_wait"] for layer in layers] == waits
    assert top.latency == (sum(m.latency for m in top.layers) + sum(waits[1:]) + 1
                           + top.argmax_stages)


def test_multi_bit_hidden_activations_are_refused():
    # BnnModel refuses them today; the top checks again for models built around it.
    model = random_model([6, 4, 2], seed=0)
    object.__setattr__(model.layers[0], "thresholds", np.zeros((4, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="activations must feed a layer taking that many bits"):
        BnnTop(model)


@pytest.mark.parametrize("fault", [("drop_ready", 3), ("drop_valid", 0), "drop_ready",
                                   ("swap_output", 1, 1), ("swap_output", 1)])
def test_bad_fault_raises_value_error(fault):
    model = random_model([37, 13, 11, 5], seed=0)
    with pytest.raises(ValueError, match=r"fault must be None, \('drop_ready', j\) with j "
                                         r"in 0\.\.2 or \('swap_output', a, b\) with output "
                                         r"bits a != b \(drop_ready:J or swap_output:A,B on "
                                         r"the command line\), not ") as e:
        BnnTop(model, fault=fault)
    # the command line's form where the fault has one (what --fault was given)
    assert str(e.value).endswith({("drop_ready", 3): "drop_ready:3",
                                  ("drop_valid", 0): "drop_valid:0",
                                  ("swap_output", 1, 1): "swap_output:1,1",
                                  ("swap_output", 1): "swap_output:1"}.get(fault, repr(fault)))


def test_swapped_output_bits_must_exist():
    model = random_model([37, 13, 11, 5], seed=0)
    with pytest.raises(ValueError, match=r"fault swap_output:0,23: the output has "
                                         r"bits 0\.\.22"):
        BnnTop(model, fault=("swap_output", 0, 23))


@pytest.mark.parametrize(("classes", "pipeline", "stages"), [
    (10, 0, 0), (10, 1, 1), (10, 2, 2), (10, 3, 3), (10, 5, 3), (2, 3, 0), (1, 2, 0), (5, 4, 2)])
def test_argmax_stages_follow_pipeline_and_add_to_latency(classes, pipeline, stages):
    model = random_model([12, 6, classes], seed=1)
    top = BnnTop(model, None, pipeline)
    assert top.argmax_stages == stages == top.sidecar()["argmax_stages"]
    assert top.latency == sum(m.latency for m in top.layers) + 1 + stages
    x = images(model, 1, 0)
    single = simulate_stream(top, [pack_int(x[0])])
    assert single.out_edges[0] - single.in_edges[0] == top.latency


@pytest.mark.parametrize(("widths", "fold", "pipeline"), CASES[1:4])
def test_rom_register_keeps_results_ii_and_latency(widths, fold, pipeline):
    model, top = build(widths, fold, pipeline, rom_register=True)
    _, ref_top = build(widths, fold, pipeline)
    assert top.latency == ref_top.latency and top.ii == ref_top.ii
    x = images(model, 4, 5)
    run = simulate_stream(top, [pack_int(v) for v in x], seed=5, p_valid=0.7, p_ready=0.5)
    classes, pops = decode(top, run.outputs)
    ref = golden.run(model, x)
    assert np.array_equal(classes, ref.classes) and np.array_equal(pops, ref.popcounts)
    single = simulate_stream(build(widths, fold, pipeline, rom_register=True)[1],
                             [pack_int(x[0])])
    assert single.out_edges[0] - single.in_edges[0] == top.latency
    assert ([layer["rom_register"] for layer in top.sidecar()["layers"]]
            == [m.weights_in == "rom" for m in top.layers])
    flags = [layer["rom_register"] for layer in ref_top.sidecar()["layers"]]
    assert flags == [False] * len(flags)
