"""Errors that the command line reports as one line and exit status 2."""

__all__ = ["BnnflowError", "ArtifactError", "OutputError", "ToolError", "first_line"]


class BnnflowError(Exception):
    """A problem with the user's input or environment, reported as one line.

    The command line prints ``error: <message>`` and exits with :attr:`exit_code`. The message
    says what is wrong and, where there is one, the fix.
    """

    exit_code = 2


class ArtifactError(BnnflowError):
    """A ``.bnn`` file that cannot be read or does not validate.

    The message starts with the file's path and names the problem.
    """

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class OutputError(BnnflowError):
    """An output file or folder that cannot be written.

    The message is ``cannot write PATH: PROBLEM; FIX``, e.g. ``cannot write /proc/x.v: cannot
    create files in /proc (No such file or directory); choose a writable folder with -o``.

    Parameters
    ----------
    path : str or Path
        The output as the user gave it.
    problem : str
        What is wrong with it.
    fix : str
        What to do instead.
    """

    def __init__(self, path, problem, fix):
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"cannot write {self.path}: {problem}; {fix}")


class ToolError(BnnflowError):
    """An external tool (Yosys, nextpnr, Verilator, Icarus) is missing or failed."""


def first_line(error):
    """The first non-blank line of an exception's message, or its type's name if it has none.

    Third-party libraries (torch, onnx, qonnx) raise messages of many lines; a one-line error
    quotes only the first.
    """
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__
