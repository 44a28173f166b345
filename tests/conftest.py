"""Shared pytest set-up: slow cases run only with --runslow (``make test`` passes it); the
``yosys_flops`` fixture."""

import json
import os
import subprocess

import pytest

# The pytest-xdist workers share the machine's cores, and torch and the BLAS libraries default to
# a thread per core in each: the workers' threads then wait on each other (3 epochs of a Brevitas
# MLP took 14-22 s on two threads, 1.6 s on one; tests/model/qonnx_fixtures.py). One thread per
# worker, set before any of them is imported (their subprocesses inherit it).
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

# Before any test module imports torch: training in the tests runs with the numerics users get
# (bnnflow.numerics), whichever module a worker happens to import first.
import bnnflow  # noqa: E402, F401, I001


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (synthesis, long simulations)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (make test does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def yosys_flops(tmp_path):
    """``count(dut)``: flip-flop bits of an Amaranth component as Yosys elaborates it, before
    mapping (``proc; flatten; opt; memory -nomap``), so that a unit's register count can be
    checked against its design or a resource model."""
    from amaranth.back import rtlil

    from bnnflow.sim.netlist import yosys_command

    def count(dut):
        script = ("read_rtlil u.il; hierarchy -top top; proc; flatten; opt; memory -nomap; "
                  "opt_clean; write_json u.json")
        (tmp_path / "u.il").write_text(rtlil.convert(dut, name="top", emit_src=False))
        subprocess.run([*yosys_command(), "-q", "-p", script], cwd=tmp_path, check=True)
        cells = json.loads((tmp_path / "u.json").read_text())["modules"]["top"]["cells"]
        return sum(len(c["connections"]["Q"]) for c in cells.values() if "dff" in c["type"])

    return count
