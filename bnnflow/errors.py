"""Errors that the command line reports as one line and exit status 2."""

__all__ = ["BnnflowError", "ArtifactError", "ToolError"]


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


class ToolError(BnnflowError):
    """An external tool (Yosys, nextpnr, Verilator, Icarus) is missing or failed."""
