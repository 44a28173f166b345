"""``bnnflow verify`` on a small folded network, on each of the three simulators, with stalls."""

import json

import numpy as np
import pytest

from bnnflow.cli import main
from bnnflow.hw.verilog import generate
from bnnflow.model import artifact
from bnnflow.model.artifact import BnnModel, InputSpec
from bnnflow.model.random_net import random_model
from bnnflow.sim.verify import run_verify

REPORT_KEYS = {"simulator", "images", "mismatches", "first_mismatch", "cycles", "ii_measured",
               "ii_expected", "latency_measured", "latency_expected", "wall_seconds",
               "cycles_per_second", "timing_note", "timing_ok", "passed"}


@pytest.mark.parametrize("simulator", ["amaranth", "icarus", "verilator"])
def test_verify_passes_with_stalls_and_reports_timing(simulator, model_files, net, input_bits,
                                                      build_root, tmp_path, capsys):
    model_path, inputs_path = model_files
    report, vcd = tmp_path / "r.json", tmp_path / "w.vcd"
    status = main(["verify", str(model_path), "--sim", simulator, "--fold", net.fold,
                   "--pipeline", str(net.pipeline), "--inputs", str(inputs_path), "--images", "all",
                   "--stall", "0.3", "--seed", "4", "--report", str(report), "--vcd", str(vcd),
                   "--build-dir", str(build_root), "--quiet"])
    out = capsys.readouterr().out
    rep = json.loads(report.read_text())
    assert status == 0, out
    assert "note: --images" not in out
    assert REPORT_KEYS <= rep.keys()
    assert rep["simulator"] == simulator
    assert rep["images"] == len(input_bits)
    assert rep["mismatches"] == 0 and rep["timing_mismatches"] == 0
    assert rep["first_mismatch"] is None
    _, sidecar = generate(net.model, net.fold, net.pipeline)
    assert rep["ii_expected"] == sidecar["ii"] == 15
    assert rep["latency_expected"] == sidecar["latency"]
    assert rep["ii_measured"] == rep["ii_expected"]
    assert rep["latency_measured"] == rep["latency_expected"]
    # 24 images at II 15 plus the 8-image timing phase, stretched by the stalls.
    assert rep["cycles"] > (len(input_bits) + 8) * 15
    assert rep["cycles_per_second"] > 0 and rep["wall_seconds"] > 0
    assert "PASS" in out
    header, dump = vcd.read_text().split("$enddefinitions", 1)
    # The input stream's valid is declared and rises: the waveform holds the run.
    valid = [line.split()[3] for line in header.splitlines()
             if line.strip().startswith("$var") and line.split()[4] in ("i__valid", "valid")]
    assert valid and any(f"1{code}" in dump.split() for code in valid)


def test_same_seed_gives_the_same_cycles_on_every_simulator(net, input_bits, build_root):
    """The stalls are the bench's, not the simulator's: cycle counts agree exactly."""
    cycles = {sim: run_verify(net.model, simulator=sim, fold=net.fold, pipeline=net.pipeline,
                              inputs=input_bits[:10], stall=0.5, seed=9,
                              build_root=build_root)["cycles"]
              for sim in ("amaranth", "icarus")}
    assert cycles["amaranth"] == cycles["icarus"]


def test_default_stimulus_is_the_data_set_test_split(tmp_path):
    widths = [64, 12, 10]
    base = random_model(widths, seed=5)
    model = BnnModel(layers=base.layers,
                     input=InputSpec(width=64, shape=(8, 8),
                                     encoding={"kind": "threshold", "scale": 16.0,
                                               "threshold": 0.5}),
                     classes=base.classes,
                     provenance={"dataset": "digits", "split_seed": 0, "test_fraction": 0.2})
    rep = run_verify(model, simulator="amaranth", fold="auto", ii=8, images=6, stall=0.2,
                     report=tmp_path / "r.json")
    assert rep["passed"] and rep["images"] == 6
    assert rep["source"] == "test split of digits"
    assert json.loads((tmp_path / "r.json").read_text())["images"] == 6


@pytest.mark.parametrize(("args", "message"), [
    (["--fold", "99x1,1x1,1x1"], "error: bad folding: layer 0"),
    (["--fold", "auto"], "error: bad folding:"),
    (["--inputs", "missing.npy"], "missing.npy: no such input file"),
    (["--inputs", "BAD"], "inputs must have shape (B, 37), not (3, 38); expected a .npy of "
                          "shape (B, 37) holding 0/1"),
    (["--inputs", "EMPTY"], "cannot read the inputs: the file is empty (expected a .npy of "
                            "shape (B, 37) holding 0/1)"),
    (["--inputs", "FOLDER"], "a folder, not a file (--inputs takes a .npy of shape (B, 37)"),
    (["--pipeline", "-1"], "--pipeline must be a non-negative integer"),
    (["--fault", "drop:1"], "--fault must be drop_ready:J with J a layer index or "
                            "swap_output:A,B"),
    (["--fault", "swap_output:1"], "--fault must be drop_ready:J"),
    (["--fault", "drop_ready:9"], "--fault drop_ready:J needs a layer index J in 0..2 (the model "
                                  "has 3 layers), not 9"),
    (["--inputs", "TEXT"], "cannot read the inputs: not a .npy array (expected a .npy of "
                           "shape (B, 37) holding 0/1)"),
])
def test_bad_input_is_one_line_exit_2_and_no_report(args, message, model_files, tmp_path,
                                                    capsys):
    model_path, _ = model_files
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 38), dtype=np.uint8))
    if "TEXT" in args:
        bad.write_text("0 1 0 1\n")
    if "EMPTY" in args:
        bad.write_bytes(b"")
    args = [str(bad) if a in ("BAD", "TEXT", "EMPTY") else a for a in args]
    args = [str(tmp_path) if a == "FOLDER" else a for a in args]
    report = tmp_path / "r.json"
    status = main(["verify", str(model_path), "--sim", "amaranth", "--report", str(report),
                   "--quiet", *args])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err and err.strip().count("\n") == 0
    assert not report.exists()
    assert list(tmp_path.iterdir()) == [bad]


@pytest.mark.parametrize("simulator", ["amaranth", "verilator-direct"])
def test_verify_with_the_rom_register_passes_with_stalls_at_the_same_timing(
        simulator, model_files, net, input_bits, build_root, tmp_path, capsys):
    model_path, inputs_path = model_files
    report = tmp_path / "r.json"
    status = main(["verify", str(model_path), "--sim", simulator, "--fold", net.fold,
                   "--pipeline", str(net.pipeline), "--inputs", str(inputs_path), "--images", "all",
                   "--stall", "0.3", "--seed", "5", "--report", str(report), "--rom-register",
                   "--build-dir", str(build_root), "--quiet"])
    capsys.readouterr()
    rep = json.loads(report.read_text())
    assert status == 0
    assert rep["images"] == len(input_bits) and rep["mismatches"] == 0
    _, sidecar = generate(net.model, net.fold, net.pipeline)
    assert (rep["ii_measured"], rep["latency_measured"]) == (sidecar["ii"], sidecar["latency"])


@pytest.mark.parametrize(("where", "rom_register"), [
    (["--target", "ecp5-85k"], True), (["--board", "ulx3s"], True),
    (["--target", "ice40-up5k"], False), (["--board", "icebreaker"], False), ([], False)])
def test_verify_target_verifies_the_design_synth_builds(tmp_path, where, rom_register):
    from bnnflow.boards.estimate import ROM_REGISTER
    from bnnflow.boards.targets import get_target

    model = random_model([16, 8, 4], seed=0)
    artifact.save(model, tmp_path / "m.bnn")
    report = tmp_path / "r.json"
    assert main(["verify", str(tmp_path / "m.bnn"), "--sim", "amaranth", "--fold", "4x8,4x4",
                 "--inputs", str(_bits_file(tmp_path, model)), "--report", str(report),
                 "--quiet", *where]) == 0
    rep = json.loads(report.read_text())
    assert rep["rom_register"] is rom_register and rep["mismatches"] == 0
    if where:
        name = where[1] if where[0] == "--target" else {"ulx3s": "ecp5-85k",
                                                         "icebreaker": "ice40-up5k"}[where[1]]
        assert rep["target"] == name
        assert rom_register == ROM_REGISTER[get_target(name).family]
    else:
        assert rep["target"] is None


def _bits_file(tmp_path, model):
    path = tmp_path / "bits.npy"
    np.save(path, np.random.default_rng(0).integers(0, 2, size=(6, model.input.width),
                                                    dtype=np.uint8))
    return path


def test_swapped_output_bits_from_the_command_line_fail_the_run(model_files, tmp_path, capsys):
    model_path, inputs_path = model_files
    report = tmp_path / "r.json"
    status = main(["verify", str(model_path), "--sim", "amaranth", "--inputs", str(inputs_path),
                   "--fault", "swap_output:0,3", "--report", str(report), "--quiet"])
    rep = json.loads(report.read_text())
    assert status == 1 and rep["fault"] == ["swap_output", 0, 3] and rep["mismatches"] > 0


def test_a_model_without_a_data_set_is_stimulated_with_random_inputs():
    from bnnflow.errors import BnnflowError
    from bnnflow.sim.verify import RANDOM_INPUTS, select_inputs

    model = random_model([9, 5, 3], seed=4, input_bits=8)
    model = BnnModel(layers=model.layers, input=model.input, provenance={})
    bits, ids, source = select_inputs(model)
    assert bits.shape == (RANDOM_INPUTS, 9) and bits.max() > 200 and bits.min() < 50
    assert source.startswith("random inputs (the model names no data set")
    again, _, _ = select_inputs(model, images=10)
    assert np.array_equal(again, bits[:10])                       # seeded
    named = BnnModel(layers=model.layers, input=model.input, provenance={"dataset": "svhn"})
    with pytest.raises(BnnflowError, match="provenance names no known data set"):
        select_inputs(named)


def test_more_images_than_the_stimulus_holds_are_noted(model_files, net, input_bits, build_root,
                                                      capsys):
    model_path, inputs_path = model_files
    asked = len(input_bits) + 5
    status = main(["verify", str(model_path), "--sim", "amaranth", "--fold", net.fold,
                   "--pipeline", str(net.pipeline), "--inputs", str(inputs_path), "--images",
                   str(asked), "--build-dir", str(build_root), "--quiet"])
    out = capsys.readouterr().out
    assert status == 0
    assert (f"note: --images {asked} asked for more than the stimulus holds; all "
            f"{len(input_bits)} were verified\n") in out


def test_a_design_too_wide_for_amaranth_is_one_line_naming_the_fix(tmp_path, capsys):
    # 128 x 520 weight bits a row, two rows: a 66,560-bit memory word, over Amaranth's 65,536
    # (a conv model's first dense layer, fully parallel, stopped verify with a traceback).
    path = tmp_path / "wide.bnn"
    artifact.save(random_model([520, 256, 3], seed=0), path)
    report = tmp_path / "r.json"
    status = main(["verify", str(path), "--sim", "amaranth", "--fold", "128x520,3x256",
                   "--images", "2", "--report", str(report), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and not report.exists()
    assert err == ("error: Amaranth's simulator takes values of at most 65536 bits and this "
                   "design has one of 66560 bits (a layer's weight word is PE x SIMD bits, twice "
                   "that for ternary weights); fold it with fewer PE x SIMD per layer (--fold, "
                   "or --fold auto --ii CYCLES), or simulate it with --sim verilator-direct\n")
