"""Every command that writes reports an output path it cannot write in one line (exit 2), before
any training, simulation or synthesis, and writes nothing."""

from pathlib import Path

import pytest

from bnnflow import fileio
from bnnflow.cli import main
from bnnflow.model import artifact
from bnnflow.model.random_net import random_model

FILE, FOLDER = "file", "folder"

#: (id, kind of output, file name to use, argv with {model}, {run} and {out} placeholders)
OUTPUTS = [
    ("verilog -o", FILE, "out.v", ["verilog", "{model}", "-o", "{out}"]),
    ("verify --report", FILE, "r.json",
     ["verify", "{model}", "--sim", "amaranth", "--quiet", "--report", "{out}"]),
    ("verify --vcd", FILE, "w.vcd",
     ["verify", "{model}", "--sim", "amaranth", "--quiet", "--vcd", "{out}"]),
    ("verify --build-dir", FOLDER, "cache",
     ["verify", "{model}", "--sim", "amaranth", "--quiet", "--build-dir", "{out}"]),
    ("synth --report", FILE, "r.json",
     ["synth", "{model}", "--target", "ice40-up5k", "--report", "{out}"]),
    ("synth --out", FOLDER, "logs", ["synth", "{model}", "--target", "ice40-up5k", "--out",
                                     "{out}"]),
    ("build -o", FOLDER, "bits", ["build", "{model}", "--board", "icebreaker", "-o", "{out}"]),
    ("train --out", FOLDER, "run", ["train", "--epochs", "1", "--quiet", "--out", "{out}"]),
    ("geometry --report", FILE, "g.json", ["geometry", "{run}", "--report", "{out}"]),
    ("geometry --plots", FOLDER, "plots", ["geometry", "{run}", "--plots", "{out}"]),
    ("demo --out", FOLDER, "demo", ["demo", "--epochs", "1", "--no-synth", "--out", "{out}"]),
]


def _bad_path(case, tmp_path, kind, name):
    """``(path, problem)``: a path of the given case and the problem the message must name."""
    if case == "proc":
        return Path("/proc") / name, f"cannot create {kind}s in /proc ("
    if case == "proc-nested":
        return Path("/proc/nope") / name, "cannot create folders in /proc ("
    if case == "under-file":
        return (tmp_path / "file.txt" / name,
                f"{tmp_path / 'file.txt'} is a file, not a folder; choose a path in a folder")
    if kind == FILE:  # "wrong-kind": a folder where a file is expected
        (tmp_path / name).mkdir()
        return tmp_path / name, "it is a directory, not a file; give a file name"
    return tmp_path / "file.txt", "it exists and is not a folder; give a folder"


def _snapshot(root):
    return {p: (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")}


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A model, a run folder with a (placeholder) checkpoint and a file; the current directory
    is ``tmp_path`` so that a stray default output would show."""
    artifact.save(random_model([16, 8, 4], seed=0), tmp_path / "net.bnn")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"never read: the check comes first")
    (tmp_path / "file.txt").write_text("keep me")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("case", ["proc", "proc-nested", "under-file", "wrong-kind"])
@pytest.mark.parametrize(("kind", "name", "argv"), [entry[1:] for entry in OUTPUTS],
                         ids=[entry[0] for entry in OUTPUTS])
def test_unwritable_output_is_one_line_exit_2_and_nothing_written(workspace, capsys, case, kind,
                                                                  name, argv):
    out, problem = _bad_path(case, workspace, kind, name)
    option = argv[argv.index("{out}") - 1]
    before = _snapshot(workspace)
    args = [a.format(model=workspace / "net.bnn", run=workspace / "run", out=out) for a in argv]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: cannot write {out}: {problem}")
    assert captured.err.endswith(f" with {option}\n") and captured.err.count("\n") == 1
    assert captured.out == ""
    assert _snapshot(workspace) == before


def test_verilog_sidecar_that_is_a_folder_is_reported_before_writing(workspace, capsys):
    (workspace / "top.json").mkdir()
    before = _snapshot(workspace)
    assert main(["verilog", str(workspace / "net.bnn"), "-o", str(workspace / "top.v")]) == 2
    assert capsys.readouterr().err == (f"error: cannot write {workspace / 'top.json'}: it is a "
                                       f"directory, not a file; give a file name with -o\n")
    assert _snapshot(workspace) == before


def test_failure_at_write_time_is_one_line_too(workspace, capsys, monkeypatch):
    # A path that only fails when written (e.g. a folder removed after the check).
    monkeypatch.setattr(fileio, "check_output_file", lambda path, *a, **k: Path(path))
    before = _snapshot(workspace)
    assert main(["verilog", str(workspace / "net.bnn"), "-o", "/proc/x.v"]) == 2
    assert capsys.readouterr().err == ("error: cannot write /proc/x.v: cannot create files in "
                                       "/proc (No such file or directory); choose a writable "
                                       "folder\n")
    assert _snapshot(workspace) == before


def test_writable_new_output_folder_is_accepted_and_not_created_by_the_check(workspace,
                                                                            capsys):
    out = workspace / "new" / "deeper" / "top.v"
    assert main(["verilog", str(workspace / "net.bnn"), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["top.json", "top.v"]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("argv", [
    ["export-qonnx", "{model}", "-o", "{out}"],
    ["import", "{model}", "-o", "{out}", "--dataset", "none"],
    ["verify", "{model}", "--sim", "amaranth", "--quiet", "--report", "{out}"],
    ["synth", "{model}", "--target", "ice40-up5k", "--report", "{out}"],
], ids=["export-qonnx -o", "import -o", "verify --report", "synth --report"])
@pytest.mark.parametrize("name", ["same", "link"])
def test_output_that_is_the_input_is_refused_and_the_input_kept(workspace, capsys, argv, name):
    model = workspace / "net.bnn"
    out = model
    if name == "link":      # the same file by another name
        out = workspace / "other.bnn"
        out.symlink_to(model)
    option = argv[argv.index("{out}") - 1]
    before = _snapshot(workspace)
    assert main([a.format(model=model, out=out) for a in argv]) == 2
    assert capsys.readouterr().err == (f"error: cannot write {out}: it is the input file "
                                       f"{model}; choose another name with {option}\n")
    assert _snapshot(workspace) == before
