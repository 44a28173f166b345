"""The ``bnnflow`` command line itself (bnnflow/cli.py): a usage error is one line on stderr
naming the command and where its options are listed, exit status 2, as every other error."""

import pytest

from bnnflow.cli import main


@pytest.mark.parametrize(("argv", "message"), [
    ([], "error: bnnflow: the following arguments are required: COMMAND (see bnnflow --help)"),
    (["nosuch"], "error: bnnflow: argument COMMAND: invalid choice: 'nosuch' (choose from "),
    (["train", "--epochs", "x"], "error: bnnflow train: argument --epochs: invalid int value: "
                                 "'x' (see bnnflow train --help)"),
    (["inspect"], "error: bnnflow inspect: the following arguments are required: MODEL (see "
                  "bnnflow inspect --help)"),
])
def test_a_usage_error_is_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(message) and err.count("\n") == 1
    assert "usage:" not in err


def test_help_still_prints_the_usage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["inspect", "--help"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("usage: bnnflow inspect")
