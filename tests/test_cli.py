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
    # an option the command does not have: the command's line (it named "bnnflow")
    (["demo", "--weights", "ternary"], "error: bnnflow demo: unrecognized arguments: --weights "
                                       "ternary (see bnnflow demo --help)"),
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


def test_a_closed_stdout_stops_quietly(tmp_path):
    # `bnnflow verilog M -o V | head -1`: the reader is gone before the first line is written
    import os
    import subprocess
    import sys

    from bnnflow.model import artifact
    from bnnflow.model.random_net import random_model

    path = tmp_path / "m.bnn"
    artifact.save(random_model([9, 5, 3], seed=0), path)
    proc = subprocess.Popen([sys.executable, "-c", "from bnnflow.cli import main; import sys; "
                             "sys.exit(main())", "verilog", str(path), "-o",
                             str(tmp_path / "m.v")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert (tmp_path / "m.v").is_file()           # the work was done before the report
