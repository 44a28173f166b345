"""File helpers: output paths checked before the work starts, atomic output files (a crash or
an error never leaves a half-written file behind), exclusive locks between processes sharing a
cache, and the tail of a tool's log.

An output that cannot be written is reported as :class:`~bnnflow.errors.OutputError` (one line
on the command line, exit status 2), whether :func:`check_output_file` or
:func:`check_output_dir` finds it up front or a writer meets it later.
"""

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from pathlib import Path

from .errors import OutputError

__all__ = ["check_output_file", "check_output_dir", "make_output_dir", "output_error",
           "atomic_path", "write_text_atomic", "write_bytes_atomic", "locked", "log_tail"]


def _fix(verb, option):
    return f"{verb} with {option}" if option else verb


def output_error(path, error, option=None):
    """The :class:`~bnnflow.errors.OutputError` for an ``OSError`` met while writing ``path``.

    Parameters
    ----------
    path : str or Path
        The output file or folder that was being written (named in the message).
    error : OSError
        What the operating system said.
    option : str, optional
        The command-line option that chooses ``path`` (e.g. ``"-o"``), named in the fix.

    Returns
    -------
    OutputError
    """
    if isinstance(error, IsADirectoryError):
        return OutputError(path, "it is a directory, not a file",
                           _fix("give a file name", option))
    if isinstance(error, NotADirectoryError | FileExistsError):
        blocking = next((p for p in Path(path).parents
                         if os.path.lexists(p) and not p.is_dir()), None)
        if blocking is not None:
            return OutputError(path, f"{blocking} is a file, not a folder",
                               _fix("choose a path in a folder", option))
    reason = error.strerror or str(error)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(path, reason, _fix("free some space or choose another folder", option))
    problem = (f"cannot create files in {Path(error.filename).parent} ({reason})"
               if error.filename else reason)
    return OutputError(path, problem, _fix("choose a writable folder", option))


def _existing_ancestor(path):
    """The nearest existing ancestor of ``path`` (``path`` itself not included)."""
    for parent in path.parents:
        if os.path.lexists(parent):
            return parent
    return Path(".")


def _probe(folder, path, option, kind):
    """Create and remove a temporary ``kind`` ("file" or "folder") in ``folder``."""
    try:
        if kind == "file":
            fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
            os.close(fd)
            os.unlink(probe)
        else:
            os.rmdir(tempfile.mkdtemp(prefix=".bnnflow-check-", dir=folder))
    except OSError as e:
        raise OutputError(path, f"cannot create {kind}s in {folder} ({e.strerror or e})",
                          _fix("choose a writable folder", option)) from None


def _check_ancestors(path, option):
    """The nearest existing ancestor of ``path``: a folder, where the new names fit."""
    ancestor = _existing_ancestor(path)
    if not ancestor.is_dir():
        raise OutputError(path, f"{ancestor} is a file, not a folder",
                          _fix("choose a path in a folder", option))
    name_max = os.pathconf(ancestor, "PC_NAME_MAX")
    for name in path.relative_to(ancestor).parts:
        if len(os.fsencode(name)) > name_max:
            raise OutputError(path, f"the name {name[:16]}... is {len(os.fsencode(name))} bytes "
                                    f"long, the file system allows at most {name_max}",
                              _fix("choose a shorter name", option))
    return ancestor


def check_output_file(path, option=None, inputs=()):
    """Check, before any work, that the output file ``path`` can be written.

    ``path`` must be a new file or an existing regular file other than the command's
    ``inputs`` (writing over the model being read would lose it); its folder must exist or be
    creatable, and accept new files (a temporary file is created there and removed at once, as
    root ignores permission bits and a folder such as ``/proc`` refuses files anyway). Nothing
    else is created.

    Parameters
    ----------
    path : str or Path
        The output file.
    option : str, optional
        The command-line option that chooses ``path`` (e.g. ``"--report"``), named in the fix.
    inputs : iterable of str or Path, optional
        The files the command reads; ``path`` must not be one of them (same file, by any
        name or link).

    Returns
    -------
    Path
        ``path`` as a Path.

    Raises
    ------
    OutputError
        ``cannot write PATH: PROBLEM; FIX``: ``path`` is one of ``inputs``, a directory or
        another non-regular file, is under a regular file, or its folder does not accept new
        files.
    """
    path = Path(path)
    try:
        for source in inputs:
            if path.is_file() and os.path.isfile(source) and os.path.samefile(path, source):
                raise OutputError(path, f"it is the input file {source}",
                                  _fix("choose another name", option))
        if os.path.lexists(path) and not path.is_file():
            if path.is_dir():
                raise OutputError(path, "it is a directory, not a file",
                                  _fix("give a file name", option))
            raise OutputError(path, f"it is {_special_kind(path)}, not a regular file",
                              _fix("give a file name", option))
        ancestor = _check_ancestors(path, option)
        if ancestor == path.parent:
            _probe(ancestor, path, option, "file")
        else:
            _probe(ancestor, path, option, "folder")
    except OSError as e:
        raise output_error(path, e, option) from None
    return path


def check_output_dir(path, option=None):
    """Check, before any work, that the output folder ``path`` can be created and written.

    ``path`` must be an existing folder or a new one whose nearest existing ancestor is a
    folder; a temporary folder is created (and removed at once) in ``path`` or in that
    ancestor. Nothing else is created.

    Parameters
    ----------
    path : str or Path
        The output folder.
    option : str, optional
        The command-line option that chooses ``path`` (e.g. ``"--out"``), named in the fix.

    Returns
    -------
    Path
        ``path`` as a Path.

    Raises
    ------
    OutputError
        ``cannot write PATH: PROBLEM; FIX``: ``path`` exists and is not a folder, is under a
        regular file, or the folder that would hold it does not accept new folders.
    """
    path = Path(path)
    try:
        if os.path.lexists(path):
            if not path.is_dir():
                raise OutputError(path, "it exists and is not a folder",
                                  _fix("give a folder", option))
            _probe(path, path, option, "folder")
        else:
            _probe(_check_ancestors(path, option), path, option, "folder")
    except OSError as e:
        raise output_error(path, e, option) from None
    return path


def make_output_dir(path, option=None):
    """Create the output folder ``path`` (and its parents) if it does not exist.

    Parameters
    ----------
    path : str or Path
        The output folder.
    option : str, optional
        The command-line option that chooses ``path``, named in the fix of an error.

    Returns
    -------
    Path
        ``path`` as a Path.

    Raises
    ------
    OutputError
        The folder cannot be created (the ``OSError`` turned into one line).
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if os.path.lexists(path) and not path.is_dir():
            raise OutputError(path, "it exists and is not a folder",
                              _fix("give a folder", option)) from None
        raise output_error(path, e, option) from None
    return path


def _special_kind(path):
    """What the existing non-regular, non-directory ``path`` is, e.g. "a device"."""
    if not path.exists():
        return "a broken link"
    mode = path.stat().st_mode
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary file lives in the same directory so that the final ``os.replace`` is atomic.
    On any exception the temporary file is removed and ``path`` is left as it was. An
    ``OSError`` while creating the folder, the temporary file or the final rename becomes
    :class:`~bnnflow.errors.OutputError` (errors inside the block pass through unchanged).
    """
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        # Renaming onto a device (``--report /dev/null`` as root) would replace the device.
        raise OutputError(path, f"it is {_special_kind(path)}, not a regular file",
                          "give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise output_error(path, e) from None
    os.close(fd)
    try:
        # mkstemp creates the file 0600; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        yield Path(tmp)
        try:
            os.replace(tmp, path)
        except OSError as e:
            raise output_error(path, e) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path, data):
    """Write ``data`` to ``path`` atomically (``OutputError`` if it cannot be written)."""
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise output_error(path, e) from None


def write_text_atomic(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive ``flock`` on ``path`` (created, with its folder) for the block."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def log_tail(path, lines=20):
    """The last ``lines`` lines of a log file (empty string if unreadable)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])
