"""Progress as lines where a bar cannot be drawn: train and verify into a pipe or a log."""

import re
import subprocess
import sys

from bnnflow.lineprogress import LineProgress


def test_a_line_per_update_with_its_fields(capsys):
    line = LineProgress(lambda d, done, total, f: f"{d} {done}/{total} loss {f['loss']}")
    with line as progress:
        task = progress.add_task("train", total=2, loss=None)
        progress.update(task, advance=1, loss=0.5)
        progress.update(task, advance=1, loss=0.25)
    out = capsys.readouterr().out.splitlines()
    assert [re.sub(r" \d+:\d\d:\d\d$", "", o) for o in out] == ["train 1/2 loss 0.5",
                                                                "train 2/2 loss 0.25"]
    assert all(re.search(r" 0:00:\d\d$", o) for o in out)


def test_stages_say_when_they_start_and_once_when_they_complete(capsys):
    progress = LineProgress(stderr=True)
    build = progress.add_task("verify: build", total=1)
    run = progress.add_task("verify: simulate", total=3)
    progress.update(build, completed=1)
    for n in (1, 2, 3, 3):
        progress.update(run, completed=n)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = [re.sub(r" \d+:\d\d:\d\d$", "", o) for o in captured.err.splitlines()]
    assert lines == ["verify: build ...", "verify: simulate ...", "verify: build: 1/1",
                     "verify: simulate: 3/3"]


def test_train_into_a_pipe_prints_every_epoch_as_it_ends(tmp_path):
    # Not a terminal: rich would print its bar once, at the end of the training.
    result = subprocess.run([sys.executable, "-m", "bnnflow", "train", "--hidden", "16",
                             "--epochs", "3", "--out", str(tmp_path / "r")],
                            capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr
    epochs = re.findall(r"^custom digits epoch (\d)/3: loss \d\.\d{4} train \d\.\d{3} test "
                        r"\d\.\d{3} \d+:\d\d:\d\d$", result.stdout, flags=re.M)
    assert epochs == ["1", "2", "3"]
    assert "━" not in result.stdout
