"""bench/brevitas_cnv.py: its random CIFAR-10 batches load as the data set, and one
configuration imports with Brevitas' classes on every image."""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest

from bnnflow.model.data import load_dataset

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "brevitas_cnv.py"

pytestmark = [pytest.mark.filterwarnings("ignore:brevitas.fx is deprecated"),
              pytest.mark.filterwarnings("ignore:fast_hadamard_transform package not found")]


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(str(SCRIPT), run_name="brevitas_cnv")


def test_random_batches_load_as_cifar10(bench, tmp_path):
    folder = bench["random_cifar"](tmp_path / "cifar", 7, seed=3)
    ds = load_dataset("cifar10", data_dir=folder)
    assert ds.x_test.shape == (7, 32, 32, 3) and ds.x_train.shape == (20, 32, 32, 3)
    assert ds.x_test.min() >= 0 and ds.x_test.max() <= 255 and np.ptp(ds.x_test) > 200


def test_one_configuration_imports_with_brevitas_classes(bench, tmp_path, capsys):
    out = tmp_path / "cnv.json"
    assert bench["main"](["--configs", "1w1a", "--images", "6", "--out", str(out)]) == 0
    run = json.loads(out.read_text())["runs"][0]
    assert run["imported"] and run["layers"] == 11
    assert (run["equal_to_brevitas"], run["images"]) == (6, 6)
    assert "cnv 1w1a: imported True" in capsys.readouterr().out
