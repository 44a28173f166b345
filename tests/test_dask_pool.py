"""Dask tasks with time limits: isolated child processes, one-line errors, clusters, progress."""

import io
import subprocess
import sys
import tempfile
import time

import pytest

from bnnflow import dask_pool
from bnnflow.dask_pool import (
    Progress,
    SchedulerError,
    Task,
    check_scheduler_address,
    open_client,
    run_isolated,
    run_tasks,
)
from bnnflow.errors import BnnflowError


@pytest.fixture
def own_tmp(tmp_path, monkeypatch):
    """Task folders go under ``tmp_path/tasks`` (to check that they are removed)."""
    folder = tmp_path / "tasks"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.mark.parametrize(("function", "kwargs", "outcome"), [
    ("os.path:normpath", {"path": "a//b"}, {"ok": True, "value": "a/b"}),
    ("bnnflow.boards.targets:get_target", {"name": "nope"},
     {"ok": False, "timeout": False,
      "error": "unknown target 'nope'; choose one of ice40-up5k, ice40-hx8k, ecp5-25k, "
               "ecp5-85k"}),
    ("json:loads", {"s": "{"},
     {"ok": False, "timeout": False,
      "error": "JSONDecodeError: Expecting property name enclosed in double quotes: line 1 "
               "column 2 (char 1)"}),
])
def test_a_task_returns_its_value_or_its_error_on_one_line(own_tmp, function, kwargs, outcome):
    got = run_isolated(function, kwargs)
    assert got["seconds"] > 0
    assert {k: got[k] for k in outcome} == outcome
    assert list(own_tmp.iterdir()) == []


def test_a_crashed_task_is_an_error_naming_its_exit_status(own_tmp):
    got = run_isolated("os:abort", {})
    assert not got["ok"] and not got["timeout"]
    assert got["error"].startswith("the run exited with status -6 and no result:")
    assert list(own_tmp.iterdir()) == []


def test_a_task_over_its_time_limit_is_stopped_with_every_process_it_started(own_tmp,
                                                                             tmp_path):
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    got = run_isolated("subprocess:check_call",
                       {"args": ["sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"]}, 1.5)
    assert time.monotonic() - started < 10
    assert got == {"ok": False, "timeout": True, "seconds": got["seconds"],
                   "error": "stopped after the time limit of 0.025 minutes"}
    assert not _alive(int(pid_file.read_text()))
    assert list(own_tmp.iterdir()) == []


def _alive(pid):
    """Whether process ``pid`` runs (a zombie no parent reaped yet counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_task_ends_when_its_worker_dies(tmp_path):
    # The worker (here a plain Python process) is killed: the child notices within about a
    # second and ends its process group, the tool it started included.
    pid_file = tmp_path / "pid"
    code = ("from bnnflow.dask_pool import run_isolated\n"
            f"run_isolated('subprocess:check_call', {{'args': ['sh', '-c', "
            f"'echo $$ > {pid_file}; exec sleep 60']}})\n")
    worker = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(100):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            time.sleep(0.1)
        tool = int(pid_file.read_text())
        assert _alive(tool)
    finally:
        worker.kill()
        worker.wait()
    for _ in range(50):
        if not _alive(tool):
            break
        time.sleep(0.1)
    assert not _alive(tool)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"function": "os.path.normpath"},
     "function must be a 'module:function' string, not 'os.path.normpath'"),
    ({"function": "os:getpid", "timeout": 0},
     "timeout must be a positive number of seconds or None, not 0"),
])
def test_bad_tasks_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        Task("k", **kwargs)


@pytest.mark.parametrize("address", ["localhost:8786", "tcp://:8786", "tcp://host:port",
                                     "tcp://host"])
def test_a_scheduler_address_needs_protocol_host_and_port(address):
    with pytest.raises(SchedulerError, match=rf"^--scheduler must be an address like "
                                             rf"tcp://HOST:8786, not '{address}'$"):
        check_scheduler_address(address)


def test_an_unreachable_scheduler_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(dask_pool, "CONNECT_TIMEOUT", 1)
    with pytest.raises(SchedulerError, match=r"^cannot reach the Dask scheduler at "
                                             r"tcp://127\.0\.0\.1:9 \(.*\); start one with "
                                             r"'dask scheduler' or leave out --scheduler for "
                                             r"a local cluster$"):
        with open_client("tcp://127.0.0.1:9"):
            pass
    assert issubclass(SchedulerError, BnnflowError)


def test_tasks_run_on_a_local_cluster_and_failures_do_not_stop_the_others():
    tasks = [Task("ok", "os.path:normpath", {"path": "x//y"}),
             Task("bad", "json:loads", {"s": "["}),
             Task("target", "bnnflow.boards.targets:get_target", {"name": "x"}, 30)]
    seen = {}
    with open_client(workers=2, processes=False) as client:
        assert dask_pool.slots(client) == 2
        failed = run_tasks(client, tasks, lambda task, outcome: seen.update({task.key: outcome}))
    assert failed == 2
    assert seen["ok"]["value"] == "x/y"
    assert seen["bad"]["error"].startswith("JSONDecodeError: Expecting value")
    assert seen["target"]["error"].startswith("unknown target 'x'; choose one of")


def _distributed_log_level():
    import logging

    return logging.getLogger("distributed").getEffectiveLevel()


def test_local_workers_log_only_critical_errors():
    # A worker busy in a run when the cluster closed logged a heartbeat to the gone scheduler
    # at ERROR, with a traceback, under the "interrupted" line (CI, 2026-12-06).
    import logging

    with open_client(workers=1) as client:
        levels = client.run(_distributed_log_level)
    assert list(levels.values()) == [logging.CRITICAL]


def test_progress_counts_done_running_and_failed_with_the_best_point():
    out = io.StringIO()
    progress = Progress(total=5, cached=2, slots=2, stream=out)
    progress.finished("run a: placed", best="a: 1 M images/s")
    progress.finished("run b: failed", failed=True)
    progress.finished("run c: placed")
    assert out.getvalue().splitlines() == [
        "[3/5] run a: placed | running 2, failed 0 | best: a: 1 M images/s",
        "[4/5] run b: failed | running 1, failed 1",
        "[5/5] run c: placed | running 0, failed 1",
    ]
