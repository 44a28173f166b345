"""bench/beyond_bench.py: gains over W1A1 of the same split and seed, and their summary."""

import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "beyond_bench.py"


@pytest.fixture(scope="module")
def beyond_bench():
    return runpy.run_path(str(SCRIPT), run_name="beyond_bench")


def _run(case, seed, acc, split=None, dataset="mnist5k"):
    run = {"preset": "tfc", "case": case, "dataset": dataset, "seed": seed,
           "golden_accuracy": acc}
    if split is not None:
        run["split_seed"] = split
    return run


def test_gains_pair_each_run_with_w1a1_of_its_split_and_seed(beyond_bench):
    runs = [_run("w1a1", 0, 0.930), _run("w1a1", 0, 0.910, split=1),
            _run("ternary-a1", 0, 0.935), _run("ternary-a1", 0, 0.935, split=1),
            _run("input8", 1, 0.95)]                       # no W1A1 of seed 1: no gain
    gains = beyond_bench["_gains"](runs)
    got = {(g["case"], g["seed"], g["split_seed"]): (g["points"], g["goal_met"]) for g in gains}
    # A run from before --splits has no split_seed: it is split 0.
    assert got == {("ternary-a1", 0, 0): (0.5, False), ("ternary-a1", 0, 1): (2.5, True)}


def test_summary_counts_pairs_mean_smallest_and_goal(beyond_bench):
    runs = [_run("w1a1", s, 0.92, split=t) for s in (0, 1) for t in (0, 1)]
    runs += [_run("w1a2", 0, 0.95, split=0), _run("w1a2", 1, 0.925, split=0),
             _run("w1a2", 0, 0.94, split=1), _run("w1a2", 1, 0.935, split=1),
             _run("w1a1", 0, 0.95, dataset="digits"), _run("w1a2", 0, 0.94, dataset="digits")]
    rows = beyond_bench["summary"](beyond_bench["_gains"](runs))
    assert rows == [
        {"preset": "tfc", "case": "w1a2", "dataset": "digits", "pairs": 1, "mean_points": -1.0,
         "min_points": -1.0, "goal_met": 0},
        {"preset": "tfc", "case": "w1a2", "dataset": "mnist5k", "pairs": 4, "mean_points": 1.75,
         "min_points": 0.5, "goal_met": 3},
    ]


def test_ceiling_runs_pair_by_their_network_accuracy(beyond_bench):
    runs = [_run("w1a1", 0, 0.930), {"preset": "tfc", "case": "float-hidden",
                                     "dataset": "mnist5k", "seed": 0, "test_accuracy": 0.945}]
    gains = beyond_bench["_gains"](runs)
    assert [(g["case"], g["points"], g["goal_met"]) for g in gains] == [
        ("float-hidden", 1.5, True)]


def test_float_weights_train_real_weights_and_are_undone(beyond_bench):
    import torch

    from bnnflow.model.layers import BinaryLinear
    from bnnflow.model.train import train_and_export

    original = BinaryLinear.forward
    fc = BinaryLinear(3, 2)
    x = torch.ones(1, 3)
    with beyond_bench["_float_weights"]("hidden"):
        fc.float_weights = True
        assert torch.allclose(fc(x), x @ fc.weight.T)
        with pytest.raises(beyond_bench["_Trained"]) as trained:
            train_and_export(dataset="digits", epochs=1, progress=False)
    assert 0.1 < trained.value.args[0]["test_accuracy"] <= 1.0
    assert BinaryLinear.forward is original
    assert train_and_export(dataset="digits", epochs=1, progress=False).metrics[
        "agreement"] == 1.0
