"""Child processes that end with everything they started, and SIGTERM as an interrupt.

A tool such as ``make -j2`` or ``yosys-smtbmc`` starts processes of its own: killing the tool
alone leaves them running (a terminated ``bnnflow verify`` left its compilers working, a
timed-out ``prove`` its solver). :func:`run_group` runs a command in a process group of its own
and kills the whole group on a timeout or when the wait is interrupted (Ctrl-C, SIGTERM
through :func:`interrupt_on_sigterm`, any exception).
"""

import contextlib
import glob
import os
import signal
import subprocess
import time

__all__ = ["run_group", "kill_group", "group_runs", "interrupt_on_sigterm", "ignoring"]


def run_group(argv, timeout=None, capture_output=False, **popen_kwargs):
    """Run ``argv`` in a new session, as :func:`subprocess.run` does (``timeout`` in seconds,
    ``capture_output``, other keyword arguments :class:`subprocess.Popen`'s), and return its
    :class:`subprocess.CompletedProcess`. On a timeout (:class:`subprocess.TimeoutExpired`)
    or an interrupted wait its whole process group is killed first."""
    if capture_output:
        popen_kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with subprocess.Popen(argv, start_new_session=True, **popen_kwargs) as child:
        try:
            out, err = child.communicate(timeout=timeout)
        except BaseException:
            kill_group(child)
            raise
    return subprocess.CompletedProcess(argv, child.returncode, out, err)


def kill_group(child):
    """SIGKILL the process group led by ``child`` (a :class:`subprocess.Popen` started in a
    session of its own) and return once none of it runs (at most 5 s after the kill)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    # A process killed but not yet scheduled still runs for a moment (on a loaded machine,
    # long enough to be seen): return only once none of the group runs.
    deadline = time.monotonic() + 5.0
    while group_runs(child.pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def group_runs(pgid):
    """Whether a process of group ``pgid`` still runs (an unreaped zombie does not); False
    where there is no ``/proc`` to tell."""
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                state, _, group = f.read().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue                    # ended while we looked
        if group == str(pgid) and state not in ("Z", "X"):
            return True
    return False


@contextlib.contextmanager
def _handled(signum, handler):
    """``handler`` for ``signum`` within the block, the previous one restored after it; a
    thread other than the main one cannot set handlers and leaves the signal alone."""
    try:
        previous = signal.signal(signum, handler)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signum, previous)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def interrupt_on_sigterm():
    """Within the block SIGTERM raises ``KeyboardInterrupt`` (as SIGINT does), so that a
    terminated command cleans up as an interrupted one does (temporary files, child
    processes, a sweep's cluster)."""
    return _handled(signal.SIGTERM, _interrupt)


def ignoring(signum):
    """Within the block ``signum`` is ignored, and so in the processes started in it (an
    ignored signal stays ignored across ``exec``)."""
    return _handled(signum, signal.SIG_IGN)
