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
