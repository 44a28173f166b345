"""Fixtures shared by the simulation tests: one build cache per session, small networks."""

import os
from types import SimpleNamespace

import numpy as np
import pytest

from bnnflow.model.artifact import save
from bnnflow.model.random_net import random_model

#: The small network of the default suite and its folding: layer cycles 15, 3, 1 (II 15).
WIDTHS = [37, 13, 11, 5]
FOLD = "5x8,4x13,5x11"
PIPELINE = 1
#: Layer 1 is the slowest (11 cycles), so a dropped ready after layer 0 loses vectors.
SLOW_SECOND_FOLD = "13x8,1x13,5x11"


@pytest.fixture(scope="session")
def build_root(tmp_path_factory):
    """One Verilator/Icarus build cache for the whole run (builds shared by design), shared by
    the pytest-xdist workers too: each worker's base directory is a child of the run's, and the
    cache locks each design (bnnflow.sim.build_cache), so a design used by tests on both workers
    is built once, not once per worker."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    root = base / "sim_build"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="session")
def small_model():
    return random_model(WIDTHS, seed=3)


@pytest.fixture(scope="session")
def net(small_model):
    """The small network and its design options."""
    return SimpleNamespace(model=small_model, widths=WIDTHS, fold=FOLD, pipeline=PIPELINE,
                           slow_second_fold=SLOW_SECOND_FOLD)


@pytest.fixture(scope="session")
def input_bits():
    return np.random.default_rng(7).integers(0, 2, size=(24, WIDTHS[0]), dtype=np.uint8)


@pytest.fixture(scope="session")
def model_files(tmp_path_factory, small_model, input_bits):
    """``(model.bnn, inputs.npy)`` on disk for the command-line tests."""
    d = tmp_path_factory.mktemp("model")
    save(small_model, d / "small.bnn")
    np.save(d / "inputs.npy", input_bits)
    return d / "small.bnn", d / "inputs.npy"
