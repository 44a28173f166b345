"""Many independent runs (syntheses, verifications) as tasks on Dask, each with a time limit.

:func:`open_client` starts a :class:`distributed.LocalCluster` sized to the machine (one
single-threaded worker process per core) or connects to an existing scheduler
(``tcp://HOST:8786``, started with ``dask scheduler``; workers join it with ``dask worker
tcp://HOST:8786``). :func:`run_tasks` submits :class:`Task` objects and calls back once per
finished task, in the order they finish.

A task is the name of a function (``"package.module:function"``) and keyword arguments of
plain JSON data. On the worker, :func:`run_isolated` runs it in a child Python process of its
own, in a temporary directory of its own (also its ``TMPDIR``, removed afterwards; the worker's
own temporary folder is in ``BNNFLOW_WORKER_TMPDIR``, for caches), and kills
the child's whole process group (the tools it started included) when the time limit passes.
The child also ends itself when the worker that started it dies (a closed cluster, an
interrupted sweep), so no tool keeps running behind a stopped sweep. A task never raises: its
outcome is ``{"ok": True, "value": ...}`` or ``{"ok": False, "error": ONE_LINE, "timeout":
bool}``, and whatever fails on the way (the child, Dask itself) becomes such an error.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field

from .errors import BnnflowError
from .procs import ignoring, run_group

__all__ = ["SchedulerError", "Task", "Progress", "open_client", "run_tasks", "run_isolated",
           "one_line", "check_scheduler_address", "slots", "WORKER_TMPDIR"]

#: Environment variable that tells a task the worker's own temporary folder (its ``TMPDIR``
#: is the task's), for caches shared between the tasks of a worker.
WORKER_TMPDIR = "BNNFLOW_WORKER_TMPDIR"

#: Seconds :func:`open_client` waits for an existing scheduler to answer.
CONNECT_TIMEOUT = 10


class SchedulerError(BnnflowError):
    """The Dask scheduler given with ``--scheduler`` is malformed or cannot be reached."""


@dataclass(frozen=True)
class Task:
    """One run to submit.

    Parameters
    ----------
    key : str
        Unique name of the run (also its Dask key).
    function : str
        ``"package.module:function"``, importable on the workers; called with ``kwargs``.
    kwargs : dict
        Plain JSON data (no objects): the child process gets it through a JSON file.
    timeout : float or None
        Seconds after which the run is stopped; ``None``: no limit.
    """

    key: str
    function: str
    kwargs: dict = field(default_factory=dict)
    timeout: float | None = None

    def __post_init__(self):
        if not isinstance(self.function, str) or ":" not in self.function:
            raise ValueError(f"function must be a 'module:function' string, not "
                             f"{self.function!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds or None, not "
                             f"{self.timeout!r}")


def one_line(text, limit=400):
    """``text`` on one line (whitespace runs joined), cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def cache_key(ident):
    """20 hex digits of the SHA-256 of ``ident`` (plain JSON data) as canonical JSON: the
    name of a cached run's record, the same for the same inputs on every machine."""
    import hashlib

    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]


def add_cluster_arguments(parser, timeout_minutes, what):
    """``--timeout`` (minutes per task, ``what`` names a task), ``--scheduler`` and
    ``--workers``: the options every command that runs on Dask shares."""
    parser.add_argument("--timeout", type=float, default=timeout_minutes, metavar="MINUTES",
                        help=f"time limit of each {what} (default: {timeout_minutes:g})")
    parser.add_argument("--scheduler", default=None, metavar="tcp://HOST:8786",
                        help="use this Dask scheduler (default: a local cluster)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="workers of the local cluster (default: one per core)")


def check_scheduler_address(address):
    """``address`` if it looks like ``tcp://HOST:PORT`` (or another Dask protocol).

    Raises
    ------
    SchedulerError
        The address has no protocol, host or port.
    """
    proto, sep, rest = str(address).partition("://")
    host, _, port = rest.rpartition(":")
    if not sep or not proto or not host or not port.isdigit():
        raise SchedulerError(f"--scheduler must be an address like tcp://HOST:8786, not "
                             f"{address!r}")
    return str(address)


@contextlib.contextmanager
def open_client(scheduler=None, workers=None, *, processes=True):
    """A connected :class:`distributed.Client` for the block; the cluster it started is closed.

    Parameters
    ----------
    scheduler : str or None
        Address of an existing scheduler (``tcp://HOST:8786``); ``None`` starts a
        :class:`~distributed.LocalCluster` with ``workers`` single-threaded workers.
    workers : int or None
        Workers of the local cluster (default: the machine's cores, ``os.cpu_count()``).
    processes : bool
        Local workers in processes of their own (``False``: threads, for tests).

    Raises
    ------
    SchedulerError
        ``scheduler`` is malformed or does not answer within :data:`CONNECT_TIMEOUT` seconds.
    """
    import logging

    from distributed import Client, LocalCluster

    if scheduler is not None:
        address = check_scheduler_address(scheduler)
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as e:
            raise SchedulerError(f"cannot reach the Dask scheduler at {address} "
                                 f"({one_line(e, 160)}); start one with 'dask scheduler' "
                                 f"or leave out --scheduler for a local cluster") from None
        with client:
            yield client
        return
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer or None, not {workers!r}")
    workers = workers or os.cpu_count() or 1
    # Ctrl-C reaches the whole process group: workers that did not ignore it each printed a
    # KeyboardInterrupt traceback while this process was already closing the cluster.
    with ignoring(signal.SIGINT):       # an ignored signal stays ignored in a child
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                               dashboard_address=":0", silence_logs=logging.ERROR)
    with cluster, Client(cluster) as client:
        if processes:               # threads would share (and keep) this process's level
            client.register_plugin(_quiet_plugin())
        yield client


def _quiet_plugin():
    """A Dask worker plugin that lets the worker's ``distributed`` logs through at CRITICAL only.

    A worker still busy in a run when the cluster closed sent a heartbeat to the scheduler that
    had just closed and logged that at ERROR with a traceback, under bnnflow's "interrupted"
    line (CI, 2026-12-06): ``silence_logs`` holds only while the worker is open. Every run's
    own error reaches the user in its outcome.
    """
    import logging

    from distributed import WorkerPlugin

    class QuietLogs(WorkerPlugin):
        name = "bnnflow-quiet-logs"

        def setup(self, worker):
            logging.getLogger("distributed").setLevel(logging.CRITICAL)

    return QuietLogs()


def slots(client):
    """Tasks ``client``'s cluster runs at once (its workers' threads; at least 1)."""
    return max(1, sum(client.nthreads().values()))


class Progress:
    """One line on ``stream`` per finished run: ``[done/total] what | running R, failed F |
    best: ...``.

    Parameters
    ----------
    total : int
        Runs in the sweep, cached ones included.
    cached : int
        Runs already done (counted as done from the start).
    slots : int
        Runs the cluster executes at once (``running`` is at most this).
    stream : file or None
        Where the lines go (default ``sys.stderr``).
    """

    def __init__(self, total, cached=0, slots=1, stream=None):
        self.total, self.done, self.failed, self.slots = total, cached, 0, slots
        self.stream = stream

    @property
    def running(self):
        """Runs submitted and not finished, at most :attr:`slots`."""
        return min(self.slots, self.total - self.done)

    def finished(self, text, failed=False, best=None):
        """Count one finished run and print its line (``best``: the best point so far)."""
        self.done += 1
        self.failed += bool(failed)
        line = (f"[{self.done}/{self.total}] {text} | running {self.running}, failed "
                f"{self.failed}" + (f" | best: {best}" if best else ""))
        print(line, file=self.stream or sys.stderr, flush=True)


def run_tasks(client, tasks, on_done):
    """Submit ``tasks`` to ``client``; call ``on_done(task, outcome)`` as each one finishes.

    ``outcome`` is the dict :func:`run_isolated` returns; a task lost by Dask (a worker that
    died, a cancelled future) gives ``{"ok": False, "error": ..., "timeout": False}`` instead,
    so one bad run never stops the others. Returns the number of tasks that failed.
    """
    from distributed import as_completed

    tasks = list(tasks)
    if not tasks:
        return 0
    futures = {client.submit(run_isolated, t.function, t.kwargs, t.timeout, key=t.key,
                             pure=False): t for t in tasks}
    failed = 0
    try:
        for future in as_completed(futures):
            task = futures[future]
            try:
                outcome = future.result()
            except Exception as e:      # the worker died, the task was cancelled, ...
                outcome = {"ok": False, "timeout": False,
                           "error": one_line(f"{type(e).__name__}: {e}")}
            failed += not outcome["ok"]
            on_done(task, outcome)
    finally:
        client.cancel([f for f in futures if not f.done()])
    return failed


def _watch_parent(parent):
    """In the child: end the whole process group once ``parent`` (the worker) is gone."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os.killpg(0, signal.SIGKILL)


def _child_main(spec_path):
    """Run in the child process: call the function of ``spec_path``, write its outcome."""
    import importlib

    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    threading.Thread(target=_watch_parent, args=(spec["parent"],), daemon=True).start()
    try:
        module, _, name = spec["function"].partition(":")
        value = getattr(importlib.import_module(module), name)(**spec["kwargs"])
        text = json.dumps({"ok": True, "value": value})
    except Exception as e:
        outcome = {"ok": False, "timeout": False,
                   "error": one_line(str(e) if isinstance(e, BnnflowError) and str(e)
                                     else f"{type(e).__name__}: {e}"),
                   "traceback": traceback.format_exc(limit=8)}
        text = json.dumps(outcome)
    tmp = spec["outcome"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, spec["outcome"])


def run_isolated(function, kwargs, timeout=None):
    """Call ``function(**kwargs)`` in a child process in its own temporary directory.

    Parameters
    ----------
    function : str
        ``"package.module:function"``; it must return JSON data.
    kwargs : dict
        JSON data.
    timeout : float or None
        Seconds before the child and every process it started are killed.

    Returns
    -------
    dict
        ``{"ok": True, "value": ..., "seconds": s}`` or ``{"ok": False, "error": ONE_LINE,
        "timeout": bool, "seconds": s}`` (the error of a failed call is its message; a
        crashed child gives the tail of its output).
    """
    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="bnnflow-task-")
    try:
        outcome = _run_child(function, kwargs, timeout, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    outcome["seconds"] = round(time.monotonic() - started, 3)
    return outcome


def _run_child(function, kwargs, timeout, work):
    spec = {"function": function, "kwargs": kwargs, "parent": os.getpid(),
            "outcome": os.path.join(work, "outcome.json")}
    spec_path = os.path.join(work, "spec.json")
    with open(spec_path, "w", encoding="utf-8") as f:
        json.dump(spec, f)
    tmp = os.path.join(work, "tmp")
    os.mkdir(tmp)
    env = {**os.environ, "TMPDIR": tmp, "PYTHONUNBUFFERED": "1",
           WORKER_TMPDIR: os.environ.get(WORKER_TMPDIR) or tempfile.gettempdir()}
    log_path = os.path.join(work, "child.log")
    with open(log_path, "wb") as log:
        try:
            child = run_group([sys.executable, "-c", f"from bnnflow.dask_pool import _child_main; "
                                                     f"_child_main({spec_path!r})"],
                              timeout=timeout, cwd=work, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
        except subprocess.TimeoutExpired:
            return {"ok": False, "timeout": True,
                    "error": f"stopped after the time limit of {timeout / 60:g} minutes"}
    try:
        with open(spec["outcome"], encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        with open(log_path, encoding="utf-8", errors="replace") as f:
            tail = f.read()[-300:]
        return {"ok": False, "timeout": False,
                "error": one_line(f"the run exited with status {child.returncode} and no "
                                  f"result: {tail}")}


