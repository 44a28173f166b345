import os

import pytest

from bnnflow.fileio import atomic_path, locked, log_tail, write_text_atomic


def test_write_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_error_leaves_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_permissions_follow_the_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "out.txt", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644


def test_log_tail_gives_the_last_lines_or_nothing(tmp_path):
    log = tmp_path / "tool.log"
    log.write_text("".join(f"line {i}\n" for i in range(30)))
    assert log_tail(log, 3) == "line 27\nline 28\nline 29"
    assert log_tail(log).splitlines() == [f"line {i}" for i in range(10, 30)]
    assert log_tail(tmp_path / "missing.log") == ""


def test_locked_excludes_a_second_holder_until_released(tmp_path):
    import subprocess
    import sys

    lock = tmp_path / "sub" / ".build.lock"
    probe = ("import fcntl, sys; f = open(sys.argv[1], 'w')\n"
             "try:\n    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n"
             "    sys.exit(3)\n")
    with locked(lock):
        assert lock.parent.is_dir()
        held = subprocess.run([sys.executable, "-c", probe, str(lock)], check=False)
        assert held.returncode == 3
    free = subprocess.run([sys.executable, "-c", probe, str(lock)], check=False)
    assert free.returncode == 0
