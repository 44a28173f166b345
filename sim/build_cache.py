"""The build cache of the simulators that compile a design (cocotb's and the direct harness).

A build directory is named after a prefix, the top module and the SHA-256 of everything the
build depends on (:func:`build_dir`); :func:`cached_build` builds into it once, under a lock
file per directory (pytest-xdist workers build the same design at the same time), writes a
``build.ok`` marker when the build succeeded, and deletes the directory before a retry when a
build failed (stale precompiled headers break the next Verilator build), keeping the failed
build's log beside it.
"""

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import ToolError
from ..fileio import locked, log_tail

__all__ = ["BUILD_OK", "BUILD_LOG", "default_build_root", "resolve_root", "design_dir",
           "cached_build"]

#: Written into a build directory when its build finished.
BUILD_OK = "build.ok"
#: The build's log inside its directory (its tail ends a failed build's message).
BUILD_LOG = "build.log"


def default_build_root():
    """``$BNNFLOW_SIM_BUILD`` or ``<tmp>/bnnflow-sim-build-<uid>``."""
    env = os.environ.get("BNNFLOW_SIM_BUILD")
    if env:
        return Path(env).absolute()
    return Path(tempfile.gettempdir()) / f"bnnflow-sim-build-{os.getuid()}"


def resolve_root(build_root=None):
    """``build_root`` as an absolute path (tools run inside the build directory, where a
    relative one would name another place), or :func:`default_build_root` when it is None."""
    return Path(build_root).absolute() if build_root is not None else default_build_root()


def design_dir(root, prefix, top, *parts):
    """``root/<prefix>-<top>-<hash>``: the hash is the SHA-256 of ``parts`` joined by NULs."""
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return Path(root) / f"{prefix}-{top}-{key[:16]}"


def cached_build(directory, build, *, what, errors, ready=None):
    """Run ``build(directory)`` unless an earlier build there succeeded; return ``directory``.

    Parameters
    ----------
    directory : Path
        From :func:`design_dir`; its parent is the build root (lock files, failed logs).
    build : callable
        Writes the sources into the (new, empty) directory and builds, logging to
        :data:`BUILD_LOG` there.
    what : str
        The builder's name in the error message.
    errors : tuple of exception types
        What a failed build raises.
    ready : callable or None
        ``ready(directory)``: whether a finished build is still usable (default: yes).

    Raises
    ------
    ToolError
        The build failed: the message names the failed log (kept as
        ``<root>/<directory name>.failed.log``) and ends with its tail.
    """
    directory = Path(directory)
    root = directory.parent
    with locked(root / f".{directory.name}.lock"):
        if (directory / BUILD_OK).is_file() and (ready is None or ready(directory)):
            return directory
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        log = directory / BUILD_LOG
        try:
            build(directory)
        except errors as e:
            tail = log_tail(log, 15)
            failed = root / f"{directory.name}.failed.log"
            with contextlib.suppress(OSError):
                shutil.copyfile(log, failed)
            shutil.rmtree(directory, ignore_errors=True)
            raise ToolError(f"{what} build failed ({e}); log: {failed}\n{tail}") from None
        (directory / BUILD_OK).write_text("ok\n")
    return directory
