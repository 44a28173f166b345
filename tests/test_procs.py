"""Child process groups (bnnflow/procs.py): an interrupted wait leaves nothing running."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from bnnflow.procs import group_runs, ignoring, interrupt_on_sigterm, run_group


def test_the_exit_status_and_output_are_returned():
    done = run_group([sys.executable, "-c", "import sys; print('hi'); sys.exit(3)"],
                     capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (3, "hi\n")


def test_a_timeout_kills_what_the_command_started(tmp_path):
    # yosys-smtbmc in miniature: its solver outlived a timed-out prove before.
    pid_file = tmp_path / "pid"
    with pytest.raises(subprocess.TimeoutExpired):
        run_group(["sh", "-c", f"echo $$ > {pid_file}; sleep 60 & sleep 60 & wait"],
                  timeout=1.0, capture_output=True)
    assert not group_runs(int(pid_file.read_text()))


def test_a_terminated_wait_kills_what_the_command_started(tmp_path):
    # `make -j2` in miniature: a shell whose own children outlived a killed shell before.
    pid_file = tmp_path / "pid"
    script = f"echo $$ > {pid_file}; sleep 60 & sleep 60 & wait"
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt), interrupt_on_sigterm():
            run_group(["sh", "-c", script])
    finally:
        timer.cancel()
    group = int(pid_file.read_text())
    assert not group_runs(group)


def test_sigterm_interrupts_like_ctrl_c():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), interrupt_on_sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_ignored_signal_stays_ignored_in_a_child_and_is_restored_after():
    before = signal.getsignal(signal.SIGINT)
    with ignoring(signal.SIGINT):
        done = run_group([sys.executable, "-c", "import signal; "
                          "print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"],
                         capture_output=True, text=True)
    assert done.stdout == "True\n"
    assert signal.getsignal(signal.SIGINT) is before
