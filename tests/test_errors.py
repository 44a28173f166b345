"""The one-line error helpers of bnnflow.errors."""

import pytest

from bnnflow.errors import OutputError, first_line


@pytest.mark.parametrize(("error", "line"), [
    (ValueError("bad shape\n  at node 3\n"), "bad shape"),
    (RuntimeError("\n\n  first real line  \nsecond"), "first real line"),
    (KeyError(), "KeyError"),
    (OSError("   \n  "), "OSError"),
])
def test_first_line_is_the_first_non_blank_line_or_the_type(error, line):
    assert first_line(error) == line


def test_output_error_names_path_problem_and_fix():
    e = OutputError("/proc/x.v", "cannot create files in /proc", "choose a writable folder")
    assert str(e) == ("cannot write /proc/x.v: cannot create files in /proc; "
                      "choose a writable folder")
    assert e.exit_code == 2
