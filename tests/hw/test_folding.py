"""Folding: cycle counts, auto folding against brute force, parsing of every fold form."""

import itertools
import json

import pytest

from bnnflow.hw.folding import (
    LayerFold,
    auto_fold,
    fully_parallel,
    layer_cycles,
    resolve_folding,
)
from bnnflow.model.kinds import matrix_cycles
from bnnflow.model.random_net import random_conv_model, random_model

MODEL = random_model([37, 13, 12, 5], seed=0)


@pytest.mark.parametrize(("k", "n", "pe", "simd", "cycles"), [
    (64, 64, 64, 64, 1), (64, 64, 16, 32, 8), (37, 13, 5, 8, 15), (37, 13, 1, 1, 481),
    (37, 13, 13, 36, 2),
])
def test_layer_cycles_is_ceil_n_over_pe_times_ceil_k_over_simd(k, n, pe, simd, cycles):
    assert matrix_cycles(k, n, LayerFold(pe, simd)) == cycles
    assert matrix_cycles(k, n, LayerFold(pe, simd), pixels=3) == 3 * cycles
    layer = random_model([k, n], seed=0).layers[0]
    assert layer_cycles(layer, LayerFold(pe, simd)) == cycles


def test_fully_parallel_uses_pe_n_simd_k():
    assert fully_parallel(MODEL) == [LayerFold(13, 37), LayerFold(12, 13), LayerFold(5, 12)]
    assert resolve_folding(MODEL) == fully_parallel(MODEL)


def test_a_pool_has_nothing_to_fold_and_is_written_1x1():
    # It was written C x k^2 ("4x4" here), a folding that means nothing for a pool.
    model = random_conv_model((10, 10, 2), [("conv", 4, 3), ("pool", 2), ("dense", 6)], 3)
    assert fully_parallel(model) == [LayerFold(4, 18), LayerFold(1, 1), LayerFold(6, 60),
                                     LayerFold(3, 6)]
    assert auto_fold(model, 200)[0][1] == LayerFold(1, 1)


def brute_force_cost(k, n, target):
    return min(pe * simd for pe, simd in itertools.product(range(1, n + 1), range(1, k + 1))
               if matrix_cycles(k, n, LayerFold(pe, simd)) <= target)


@pytest.mark.parametrize("target", [1, 2, 3, 5, 8, 15, 16, 40, 100, 481, 10000])
def test_auto_fold_is_cheapest_meeting_target(target):
    folding, achieved = auto_fold(MODEL, target)
    cycles = [layer_cycles(lay, f) for lay, f in zip(MODEL.layers, folding, strict=True)]
    assert achieved == max(cycles) <= target
    for lay, f in zip(MODEL.layers, folding, strict=True):
        assert f.pe * f.simd == brute_force_cost(lay.in_width, lay.out_width, target)


#: tests/sim/test_verify_conv.py, STAGES_BURST: a 3x3 pool every pixel passes bursts that a
#: 1x1 conv folded at 432 cycles a map falls behind (489 an image, verified there).
BURST_NET = random_conv_model((12, 13, 1), [("conv", 6, 3), ("conv", 7, 1), ("pool", 3, 1),
                                            ("conv", 7, 1)], 3, seed=0)


def modelled_ii(model, folding, pipeline=0):
    from bnnflow.hw.top import BnnTop

    top = BnnTop(model, folding, pipeline)
    top._MustUse__silence = True
    return top.ii


def test_auto_fold_folds_the_layer_behind_a_pool_faster_until_the_model_meets_the_ii():
    unit, unit_ii = auto_fold(BURST_NET, 468, modelled=False)
    assert ",".join(map(str, unit)) == "3x5,2x6,1x1,3x4,1x7" and unit_ii == 440
    assert modelled_ii(BURST_NET, unit) == 489
    folding, ii = auto_fold(BURST_NET, 468)
    # Only the layer behind the pool changes, to its next faster folding (288 cycles).
    assert ",".join(map(str, folding)) == "3x5,2x6,1x1,2x7,1x7" and ii == 440
    assert modelled_ii(BURST_NET, folding) == 440


@pytest.mark.parametrize(("shape", "stages"), [
    ((12, 13, 1), [("conv", 6, 3), ("conv", 7, 1), ("pool", 3, 1), ("conv", 7, 1)]),
    ((13, 11, 3), [("conv", 5, 3), ("pool", 3, 2), ("conv", 9, 1), ("conv", 6, 2), ("dense", 7)]),
    ((11, 10, 2), [("conv", 4, 3, 3, 2), ("conv", 3, 2, 2, 3), ("dense", 5)]),
    ((9, 8, 2), [("conv", 4, 3, 3, 2, 1, 1), ("conv", 3, 3, 3, 1, 2), ("dense", 5)]),
])
@pytest.mark.parametrize("seed", [1, 2])
def test_auto_fold_of_a_map_network_gives_the_ii_the_design_runs_at(shape, stages, seed):
    model = random_conv_model(shape, stages, 3, seed=seed)
    for target in (160, 300, 450, 1000):
        folding, ii = auto_fold(model, target)
        # The figure every later step (sidecar, verify) claims, at any pipeline depth.
        assert ii == modelled_ii(model, folding) == modelled_ii(model, folding, 2) <= target


def test_auto_fold_prefers_divisors_among_equally_cheap():
    model = random_model([64, 64, 10], seed=0)
    folding, achieved = auto_fold(model, 16)
    assert folding[0].pe * folding[0].simd == 256
    assert 64 % folding[0].pe == 0 and 64 % folding[0].simd == 0
    assert achieved == 16


def test_auto_fold_reports_achieved_ii_when_below_target():
    # Fewer cycles than asked for when the cheapest folding (1x1) is faster than the target.
    folding, achieved = auto_fold(MODEL, 10 ** 6)
    assert folding == [LayerFold(1, 1)] * 3
    assert achieved == 37 * 13


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_auto_fold_rejects_bad_target(bad):
    with pytest.raises(ValueError, match="target II must be a positive integer number of "
                                         "cycles"):
        auto_fold(MODEL, bad)


def test_cli_string_and_json_file_give_the_same_folding(tmp_path):
    path = tmp_path / "fold.json"
    path.write_text(json.dumps({"layers": [{"pe": 5, "simd": 8}, {"pe": 12, "simd": 13},
                                           {"pe": 1, "simd": 3}]}))
    expected = [LayerFold(5, 8), LayerFold(12, 13), LayerFold(1, 3)]
    assert resolve_folding(MODEL, "5x8,12x13,1x3") == expected
    assert resolve_folding(MODEL, str(path)) == expected
    assert resolve_folding(MODEL, path) == expected
    assert resolve_folding(MODEL, [(5, 8), (12, 13), (1, 3)]) == expected


def test_auto_needs_ii_and_ii_alone_means_auto():
    with pytest.raises(ValueError, match=r"fold 'auto' needs a target II \(--ii CYCLES\)"):
        resolve_folding(MODEL, "auto")
    assert resolve_folding(MODEL, "auto", 8) == auto_fold(MODEL, 8)[0]
    assert resolve_folding(MODEL, None, 8) == auto_fold(MODEL, 8)[0]
    with pytest.raises(ValueError, match=r"only applies with fold 'auto'"):
        resolve_folding(MODEL, "5x8,12x13,1x3", 8)


@pytest.mark.parametrize(("fold", "message"), [
    ("5x8,12x13", r"^folding must have one entry per layer \(3\), not 2$"),
    ("14x8,12x13,1x3", r"layer 0 \(fc0, 37 inputs, 13 neurons\): pe must be an integer in "
                       r"1\.\.13, not 14$"),
    ("5x38,12x13,1x3", r"layer 0 .*: simd must be an integer in 1\.\.37, not 38$"),
    ("5x8,0x13,1x3", r"layer 1 .*: pe must be a positive integer, not 0$"),
    ("5x8,12x13,1x-3", r"fold must be 'auto', a JSON file or PExSIMD per layer"),
    ("5*8,12x13,1x3", r"bad entry '5\*8'"),
    ([(5, 8), (12, 13), (1, 2.5)], r"layer 2 .*: simd must be a positive integer, not 2.5$"),
    ("missing.json", r"fold file 'missing.json' does not exist"),
])
def test_impossible_foldings_raise_value_error_naming_allowed_values(fold, message):
    with pytest.raises(ValueError, match=message):
        resolve_folding(MODEL, fold)


@pytest.mark.parametrize(("content", "message"), [
    ("{", "is not valid JSON"),
    ('{"layer": []}', r'must hold \{"layers"'),
    ('{"layers": [{"pe": 1}]}', r'layer 0 must be \{"pe": P, "simd": S\}'),
])
def test_bad_fold_files_raise_value_error(tmp_path, content, message):
    path = tmp_path / "fold.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        resolve_folding(MODEL, str(path))


def test_layer_fold_str_is_cli_form():
    assert str(LayerFold(16, 32)) == "16x32"
