import errno
import os

import pytest

from bnnflow.errors import BnnflowError, OutputError
from bnnflow.fileio import (
    atomic_path,
    check_output_dir,
    check_output_file,
    locked,
    log_tail,
    make_output_dir,
    output_error,
    write_text_atomic,
)


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


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def files(tmp_path):
    (tmp_path / "file.txt").write_text("keep")
    (tmp_path / "dir").mkdir()
    return tmp_path


@pytest.mark.parametrize("name", ["new.v", "file.txt", "dir/new.v", "a/b/new.v"])
def test_check_output_file_accepts_writable_paths_and_creates_nothing(files, name):
    before = _tree(files)
    assert check_output_file(str(files / name), "-o") == files / name
    assert _tree(files) == before
    assert (files / "file.txt").read_text() == "keep"


@pytest.mark.parametrize("name", ["new", "dir", "a/b/c"])
def test_check_output_dir_accepts_writable_paths_and_creates_nothing(files, name):
    before = _tree(files)
    assert check_output_dir(str(files / name), "--out") == files / name
    assert _tree(files) == before


@pytest.mark.parametrize(("check", "path", "message"), [
    (check_output_file, "/proc/x.v", "cannot write /proc/x.v: cannot create files in /proc "
                                     "(No such file or directory); choose a writable folder "
                                     "with -o"),
    (check_output_file, "/proc/nope/x.v", "cannot write /proc/nope/x.v: cannot create folders "
                                          "in /proc (No such file or directory); choose a "
                                          "writable folder with -o"),
    (check_output_file, "/proc/version", "cannot write /proc/version: cannot create files in "
                                         "/proc (No such file or directory); choose a writable "
                                         "folder with -o"),
    (check_output_file, "/dev/null", "cannot write /dev/null: it is a device, not a regular "
                                     "file; give a file name with -o"),
    (check_output_dir, "/proc/x", "cannot write /proc/x: cannot create folders in /proc (No "
                                  "such file or directory); choose a writable folder with -o"),
    (check_output_dir, "/proc/nope/out", "cannot write /proc/nope/out: cannot create folders "
                                         "in /proc (No such file or directory); choose a "
                                         "writable folder with -o"),
])
def test_check_rejects_folders_that_accept_no_files(check, path, message):
    with pytest.raises(OutputError) as info:
        check(path, "-o")
    assert str(info.value) == message
    assert info.value.path == path and info.value.exit_code == 2
    assert isinstance(info.value, BnnflowError)


@pytest.mark.parametrize("check", [check_output_file, check_output_dir])
@pytest.mark.parametrize("name", ["file.txt/out", "file.txt/a/out"])
def test_check_rejects_paths_under_a_regular_file(files, check, name):
    before = _tree(files)
    with pytest.raises(OutputError, match="^cannot write .*: (.*) is a file, not a folder; "
                                          "choose a path in a folder with --out$") as info:
        check(files / name, "--out")
    assert info.value.problem == f"{files / 'file.txt'} is a file, not a folder"
    assert _tree(files) == before


def test_check_output_file_rejects_a_directory(files):
    with pytest.raises(OutputError) as info:
        check_output_file(files / "dir", "--report")
    assert str(info.value) == (f"cannot write {files / 'dir'}: it is a directory, not a file; "
                               f"give a file name with --report")


def test_check_output_dir_rejects_a_regular_file(files):
    with pytest.raises(OutputError) as info:
        check_output_dir(files / "file.txt", "--out")
    assert str(info.value) == (f"cannot write {files / 'file.txt'}: it exists and is not a "
                               f"folder; give a folder with --out")


@pytest.mark.parametrize("check", [check_output_file, check_output_dir])
def test_check_rejects_a_name_longer_than_the_file_system_allows(files, check):
    name = "n" * 300
    with pytest.raises(OutputError) as info:
        check(files / name / "out", "-o")
    assert info.value.problem == ("the name nnnnnnnnnnnnnnnn... is 300 bytes long, the file "
                                  "system allows at most 255")
    assert info.value.fix == "choose a shorter name with -o"


def test_check_without_option_names_no_option(files):
    with pytest.raises(OutputError) as info:
        check_output_file(files / "dir")
    assert info.value.fix == "give a file name"


@pytest.mark.parametrize(("path", "problem"), [
    ("/proc/x.v", "cannot create files in /proc (No such file or directory)"),
    ("/proc/nope/x.v", "cannot create files in /proc (No such file or directory)"),
    ("dir", "it is a directory, not a file"),
    ("file.txt/x.v", "{files}/file.txt is a file, not a folder"),
    ("file.txt/a/x.v", "{files}/file.txt is a file, not a folder"),
])
def test_atomic_write_failure_is_an_output_error_and_leaves_nothing(files, path, problem):
    target = files / path
    before = _tree(files)
    with pytest.raises(OutputError) as info:
        write_text_atomic(target, "text")
    assert str(info.value).startswith(f"cannot write {target}: {problem.format(files=files)}; ")
    assert _tree(files) == before
    assert (files / "file.txt").read_text() == "keep"


def test_errors_inside_the_atomic_block_pass_through(tmp_path):
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "out.txt"):
        open(tmp_path / "missing-input.txt").close()
    assert list(tmp_path.iterdir()) == []


def test_make_output_dir_creates_or_reports_one_error(files):
    assert make_output_dir(files / "a" / "b", "--out") == files / "a" / "b"
    assert (files / "a" / "b").is_dir()
    assert make_output_dir(files / "dir") == files / "dir"
    with pytest.raises(OutputError) as info:
        make_output_dir(files / "file.txt", "--out")
    assert info.value.problem == "it exists and is not a folder"
    assert info.value.fix == "give a folder with --out"
    with pytest.raises(OutputError) as info:
        make_output_dir(files / "file.txt" / "sub", "--out")
    assert info.value.problem == f"{files / 'file.txt'} is a file, not a folder"
    with pytest.raises(OutputError) as info:
        make_output_dir("/proc/nope/out")
    assert str(info.value) == ("cannot write /proc/nope/out: cannot create files in /proc (No "
                               "such file or directory); choose a writable folder")


def test_output_error_for_a_full_disk_says_to_free_space():
    error = output_error("out.v", OSError(errno.ENOSPC, "No space left on device"), "-o")
    assert str(error) == ("cannot write out.v: No space left on device; free some space or "
                          "choose another folder with -o")


def test_atomic_write_never_replaces_a_special_file(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputError) as checked:
        check_output_file(fifo, "--report")
    with pytest.raises(OutputError) as written:
        write_text_atomic(fifo, "text")
    assert checked.value.problem == written.value.problem == "it is a pipe, not a regular file"
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"] and fifo.is_fifo()
