"""Progress as plain lines, for output that is not a terminal (a log file, a pipe, CI).

A rich progress bar redraws itself on a terminal; anywhere else it shows nothing until it
stops, so ``bnnflow train ... > log`` said nothing for the whole of a long training.
:class:`LineProgress` takes the calls the commands make of a rich ``Progress``
(``add_task``, ``update``, used as a context manager) and prints a line per step instead.
:func:`is_terminal` says which of the two a stream wants.
"""

import sys
import time

__all__ = ["LineProgress", "is_terminal"]


def is_terminal(stderr=False):
    """Whether rich would draw a live display on stdout (or stderr): a terminal, or forced."""
    from rich.console import Console

    return Console(stderr=stderr).is_terminal


def _elapsed(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class LineProgress:
    """A line per step of each task on ``stream``.

    Parameters
    ----------
    line : callable or None
        ``line(description, completed, total, fields)`` gives the text printed after each
        ``update``; ``None`` prints ``description`` when a task starts and ``description:
        completed/total`` once it completes (for tasks updated many times a second).
    stderr : bool
        Print on stderr instead of stdout.
    """

    def __init__(self, line=None, *, stderr=False):
        self._line = line
        self._stderr = stderr
        self._tasks = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def _say(self, text, started=None):
        stream = sys.stderr if self._stderr else sys.stdout
        if started is not None:
            text = f"{text} {_elapsed(time.monotonic() - started)}"
        print(text, file=stream, flush=True)

    def add_task(self, description, total=None, **fields):
        """Start a task; returns its id for :meth:`update`."""
        task = {"description": description, "total": total, "completed": 0, "fields": fields,
                "started": time.monotonic(), "done": False}
        self._tasks.append(task)
        if self._line is None:
            self._say(f"{description} ...")
        return len(self._tasks) - 1

    def update(self, task_id, *, advance=None, completed=None, **fields):
        """Move a task on (``advance`` steps, or to ``completed``) and print its line."""
        task = self._tasks[task_id]
        if completed is not None:
            task["completed"] = completed
        if advance is not None:
            task["completed"] += advance
        task["fields"].update(fields)
        if self._line is not None:
            self._say(self._line(task["description"], task["completed"], task["total"],
                                 task["fields"]), task["started"])
        elif (not task["done"] and task["total"] is not None
              and task["completed"] >= task["total"]):
            task["done"] = True
            self._say(f"{task['description']}: {task['completed']}/{task['total']}",
                      task["started"])
