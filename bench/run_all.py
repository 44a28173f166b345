"""Issue 7 benchmark: accuracy, hardware cost, verification speed and tool times in one run.

Run as ``.venv/bin/python bench/run_all.py [--quick] [--cases ...] [--budget-minutes M]``.
Writes ``bench/results.json`` and ``bench/results.md`` (both atomically, rewritten after every
step, so an interrupted or budget-limited run leaves the figures measured so far, marked
incomplete).

Per case (``tfc-digits``, ``tfc-mnist5k``, ``sfc-mnist5k``):

* accuracy: float baseline (``TrainConfig(float_baseline=True)``), binary PyTorch eval, golden
  model on the exported artifact, hardware (RTL simulation of the whole test split with
  :func:`bnnflow.sim.verify.run_verify`, ``images=None``; the hardware accuracy is the golden
  accuracy when the scoreboard found no mismatch on any image, else not derivable) and an
  ``equal`` flag computed from the last three;
* hardware per target and folding with :func:`bnnflow.boards.synth.synthesize`: the folding
  of :func:`bnnflow.boards.fit.fit_folding` (fully parallel where it is expected to fit) plus
  ``auto`` at a few IIs; LUT4, FF, BRAM, Fmax, analytic and measured (simulated) II, latency,
  images/s = Fmax / II, ``lut4_per_synapse_per_cycle = LUT4 * II / synapses`` (LUT4 per
  synapse evaluated per cycle, the issue 7 metric, lower is better) and its inverse
  ``synapses_per_cycle_per_lut4 = synapses / II / LUT4``;
* tool times: training, Verilog generation, Verilator build, Yosys, nextpnr.

Once per run: simulator speeds on one design (the sfc model, or tfc in ``--quick``) with
``bench/sim_bench.py`` for every simulator (``--quick``: all but cocotb + Verilator), their
ratios, and a fully parallel 64x64 MVTU synthesized with :func:`bnnflow.hw.bench.synth_mvtu`
for the LUT4-per-synapse targets.
"""

import argparse
import hashlib
import json
import os
import platform
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: Runs per simulator in the speed comparison; the median run is reported, every run's
#: cycles/s is kept (sim_bench.py ``--repeat``). The direct harness's clock loop lasts about
#: 0.1 s on sfc, so one preemption on a shared machine moves a single figure by 30-60 %.
SPEED_REPEATS = {"amaranth": 1, "icarus": 1, "verilator": 3, "verilator-direct": 7}
#: Folding of the simulator-speed design per case, fixed so that speed figures compare across
#: runs: sfc at ``auto`` II 64, the design of every speed figure since 2026-11-22 (it was the
#: ECP5-85k fit_folding until the block RAM limit moved that to II 128: half the weight bits
#: per cycle, so more cycles/s for the same images/s). Other cases use the verified folding.
SPEED_FOLDING = {"sfc-mnist5k": "4x784,4x256,4x256,5x8"}
#: case -> (preset, data set)
CASES = {
    "tfc-digits": ("tfc", "digits"),
    "tfc-mnist5k": ("tfc", "mnist5k"),
    "sfc-mnist5k": ("sfc", "mnist5k"),
}
TARGETS = ("ice40-up5k", "ecp5-85k")
#: Extra ``auto`` IIs synthesized per case and target (beside the fit_folding choice).
#: tfc-digits on the ECP5 at II 256 matches the UP5K's fit_folding II (the Fmax goals are
#: compared at the same II); II 32 shows the ECP5 at a higher throughput; the UP5K at II 512
#: shows what more folding buys.
EXTRA_IIS = {"tfc-digits": {"ice40-up5k": [512], "ecp5-85k": [256, 32]},
             "sfc-mnist5k": {"ecp5-85k": [256]}}
#: Pipeline stages of the fully parallel 64x64 layer synthesized for the LUT4-per-synapse
#: goal, beside the run's ``--pipeline`` (the goal names no pipeline depth; each one is
#: reported).
LAYER64_PIPELINES = (0,)
#: Issue 7 targets.
GOALS = {
    "direct_cycles_per_second_sfc": 1_000_000,
    "direct_over_cocotb_verilator": 20.0,
    "tfc_fmax_mhz": {"ecp5-85k": 125.0, "ice40-up5k": 40.0},
    "layer64_lut4_per_synapse": {"ecp5": 1.2, "ice40": 0.85},
}
SYNAPSES_NOTE = ("synapses = sum over layers of K * N (binary weights); images per cycle = 1 / II; "
                 "lut4_per_synapse_per_cycle = LUT4 * II / synapses; "
                 "synapses_per_cycle_per_lut4 = synapses / II / LUT4; on ECP5 'lut4' counts "
                 "LUT4 cells only, 'lut4_with_carry' adds 2 per CCU2C carry cell")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=None,
                        help="cases to run (default: all three; --quick: tfc-digits)")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=None,
                        help="synthesis targets (default: both; --quick: ice40-up5k)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: tfc-digits, ice40-up5k, no extra IIs, no 64x64 "
                             "layer synthesis, fewer images for the slow simulators")
    parser.add_argument("--pipeline", type=int, default=2,
                        help="popcount pipeline stages of every design (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: the recipe's per case)")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="skip the remaining synthesis steps once this much time has "
                             "passed (they are listed as skipped)")
    parser.add_argument("--pnr-timeout-minutes", type=float, default=20.0,
                        help="stop a nextpnr run after this many minutes and record it as a "
                             "tool failure (default 20; 0: no limit)")
    parser.add_argument("--out-dir", default=str(HERE),
                        help="where results.json and results.md go (default: bench/)")
    parser.add_argument("--work-dir", default=None,
                        help="models, builds and tool logs (default: a new temporary dir)")
    args = parser.parse_args(argv)
    cases = args.cases or (["tfc-digits"] if args.quick else list(CASES))
    targets = args.targets or (["ice40-up5k"] if args.quick else list(TARGETS))
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bnnflow-run-all-"))
    work.mkdir(parents=True, exist_ok=True)
    Bench(args, cases, targets, work).run()
    return 0


class Bench:
    """One run: collects every figure into ``self.results`` and rewrites the outputs."""

    def __init__(self, args, cases, targets, work):
        from bnnflow.sim import tools

        self.args, self.cases, self.targets, self.work = args, cases, targets, work
        self.started = time.monotonic()
        self.build_root = work / "sim-build"
        self.fast_sim = ("verilator-direct" if "verilator-direct" in tools.SIMULATORS
                         else "verilator")
        self.models = {}
        self.results = {
            "command": " ".join([sys.executable, *sys.argv]),
            "quick": args.quick,
            "complete": False,
            "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "machine": _machine(),
            "source": _source_state(),
            "settings": {"cases": cases, "targets": targets, "pipeline": args.pipeline,
                         "seed": args.seed, "epochs": args.epochs,
                         "budget_minutes": args.budget_minutes,
                         "pnr_timeout_minutes": args.pnr_timeout_minutes or None,
                         "hardware_simulator": self.fast_sim, "work_dir": str(work)},
            "formulas": {"synapses": SYNAPSES_NOTE,
                         "images_per_second": "Fmax / II (steady state)",
                         "hardware_accuracy": "golden accuracy when run_verify found 0 "
                                              "mismatches over the whole test split (every "
                                              "class equals the golden model's), else null",
                         "equal": "binary PyTorch eval == golden == hardware accuracy and the "
                                  "hardware verified the whole split with 0 mismatches"},
            "goals": GOALS,
            "cases": {},
            "simulator_speed": None,
            "layer64": [],
            "skipped": [],
            "goal_checks": [],
        }

    # --- driver -----------------------------------------------------------------------------

    def run(self):
        for case in self.cases:
            self.train(case)
        for case in self.cases:
            self.verify(case)
        self.simulator_speed()
        if not self.args.quick:
            self.layer64()
        for step in self.synth_plan():
            self.synth(*step)
        self.results["complete"] = not self.results["skipped"]
        self.results["total_seconds"] = round(time.monotonic() - self.started, 1)
        self.write()
        print(f"wrote {self.out('results.json')} and {self.out('results.md')}", flush=True)

    def out(self, name):
        return Path(self.args.out_dir) / name

    def over_budget(self):
        budget = self.args.budget_minutes
        return budget is not None and time.monotonic() - self.started > 60 * budget

    def say(self, text):
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:7.1f} s] {text}", flush=True)

    def write(self):
        from bnnflow.fileio import write_text_atomic

        self.results["goal_checks"] = goal_checks(self.results)
        Path(self.args.out_dir).mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.out("results.json"), json.dumps(self.results, indent=2) + "\n")
        write_text_atomic(self.out("results.md"), markdown(self.results))

    # --- steps ------------------------------------------------------------------------------

    def train(self, case):
        from bnnflow.model import artifact
        from bnnflow.model.train import TrainConfig, train_and_export

        preset, dataset = CASES[case]
        self.say(f"train {case} (with the float baseline)")
        config = TrainConfig(preset=preset, dataset=dataset, seed=self.args.seed,
                             epochs=self.args.epochs, float_baseline=True, progress=False)
        start = time.perf_counter()
        result = train_and_export(config)
        wall = time.perf_counter() - start
        m = result.metrics
        path = self.work / case / "model.bnn"
        path.parent.mkdir(parents=True, exist_ok=True)
        artifact.save(result.model, path)
        self.models[case] = (result.model, path)
        widths = list(result.model.widths)
        self.results["cases"][case] = {
            "preset": preset, "dataset": dataset, "widths": widths,
            "synapses": sum(k * n for k, n in zip(widths[:-1], widths[1:], strict=True)),
            "epochs": m["epochs"], "n_test": m["n_test"],
            "accuracy": {"float_baseline": m["float_accuracy"],
                         "binary_pytorch": m["test_accuracy"],
                         "golden": m["golden_accuracy"],
                         "pytorch_golden_agreement": m["agreement"],
                         "hardware": None, "hardware_images": None,
                         "hardware_mismatches": None, "equal": None},
            "tool_seconds": {"train_binary": round(m["train_seconds"], 2),
                             "train_total_with_float_baseline": round(wall, 2)},
            "verification": None, "synthesis": [],
        }
        self.write()

    def verify_folding(self, case):
        """The design verified over the whole split: the first target's fit folding."""
        from bnnflow.boards.fit import DoesNotFit, fit_folding

        model, _ = self.models[case]
        for target in self.targets:
            try:
                return fit_folding(model, target, pipeline=self.args.pipeline), target
            except DoesNotFit:
                continue
        return fit_folding(model, "ecp5-85k", pipeline=self.args.pipeline), "ecp5-85k"

    def verify(self, case):
        from bnnflow.hw.verilog import generate
        from bnnflow.sim.verify import run_verify

        model, _ = self.models[case]
        entry = self.results["cases"][case]
        (folding, _), target = self.verify_folding(case)
        fold_text = ",".join(str(f) for f in folding)
        start = time.perf_counter()
        _, sidecar = generate(model, folding, self.args.pipeline, warn_large=False)
        entry["tool_seconds"]["verilog_generation"] = round(time.perf_counter() - start, 2)
        entry["tool_seconds"]["verilog_generation_design"] = fold_text
        self.say(f"verify {case} on {self.fast_sim}, folding {fold_text} (fit for {target}), "
                 f"whole test split")
        rep = run_verify(model, simulator=self.fast_sim, folding=folding,
                         pipeline=self.args.pipeline, images=None, stall=0.0,
                         build_root=self.build_root)
        acc = entry["accuracy"]
        whole = rep["images"] == entry["n_test"]
        acc["hardware_images"] = rep["images"]
        acc["hardware_mismatches"] = rep["mismatches"]
        acc["hardware"] = acc["golden"] if whole and rep["mismatches"] == 0 else None
        acc["equal"] = (acc["hardware"] is not None
                        and acc["binary_pytorch"] == acc["golden"] == acc["hardware"]
                        and acc["pytorch_golden_agreement"] == 1.0)
        entry["verification"] = {
            "simulator": self.fast_sim, "folding": fold_text, "fit_for": target,
            "model_checksum": rep.get("model_checksum"),
            "pipeline": self.args.pipeline, "images": rep["images"],
            "mismatches": rep["mismatches"], "passed": rep["passed"],
            "ii_expected": rep["ii_expected"], "ii_measured": rep["ii_measured"],
            "ii_sidecar": sidecar["ii"],
            "latency_expected": rep["latency_expected"],
            "latency_measured": rep["latency_measured"], "cycles": rep["cycles"],
            "cycles_per_second": rep["cycles_per_second"],
            "build_seconds": rep["build_seconds"], "sim_seconds": rep["sim_seconds"]}
        entry["tool_seconds"]["verilator_build"] = rep["build_seconds"]
        entry["tool_seconds"]["verilator_build_simulator"] = self.fast_sim
        self.write()

    def simulator_speed(self):
        """Every simulator on one design, through bench/sim_bench.py (imported, not copied)."""
        from bnnflow.sim import tools

        sim_bench = runpy.run_path(str(HERE / "sim_bench.py"), run_name="sim_bench")
        case = "tfc-digits" if self.args.quick or "sfc-mnist5k" not in self.cases \
            else "sfc-mnist5k"
        if case not in self.models:
            case = self.cases[0]
        model, path = self.models[case]
        folding = SPEED_FOLDING.get(case) or self.results["cases"][case]["verification"][
            "folding"]
        quick = self.args.quick
        # --quick leaves cocotb + Verilator out: its build is the longest step of the
        # comparison (about 30 s), and without it there is no ratio to report.
        sims = ["amaranth", "icarus"] if quick else ["amaranth", "icarus", "verilator"]
        if "verilator-direct" in tools.SIMULATORS:
            sims.append("verilator-direct")
        images = {"amaranth": 20 if quick else 100, "icarus": 20 if quick else 100,
                  "verilator": "all", "verilator-direct": "all"}
        reports = {}
        for sim in sims:
            self.say(f"simulator speed: {sim} on {case} ({folding}), {images[sim]} images")
            out = self.work / f"sim_bench_{sim}.json"
            status = sim_bench["main"]([str(path), "--sims", sim, "--fold", folding,
                                        "--pipeline", str(self.args.pipeline),
                                        "--images", str(images[sim]),
                                        "--build-dir", str(self.build_root),
                                        "--repeat", str(self.speed_repeats(sim)),
                                        "--json", str(out)])
            rep = json.loads(out.read_text(encoding="utf-8"))[sim]
            reports[sim] = {"passed": status == 0 and rep["passed"], "images": rep["images"],
                            "cycles": rep["cycles"],
                            "cycles_per_second": rep["cycles_per_second"],
                            "cycles_per_second_runs": rep["cycles_per_second_runs"],
                            "images_per_second": (round(rep["images"] * rep["cycles_per_second"]
                                                        / rep["cycles"], 1)
                                                  if rep["cycles_per_second"] else None),
                            "loop_seconds": rep["loop_seconds"],
                            "build_seconds": rep["build_seconds"],
                            "sim_seconds": rep["sim_seconds"],
                            "ii_measured": rep["ii_measured"], "ii_expected": rep["ii_expected"]}
            self.results["simulator_speed"] = {
                "case": case, "widths": list(model.widths), "folding": folding,
                "pipeline": self.args.pipeline, "simulators": reports,
                "ratios_to_cocotb_verilator": _ratios(reports),
                "note": "cycles_per_second = simulated cycles / wall time of the clock loop "
                        "(builds and start-up excluded), the median of the runs listed under "
                        "cycles_per_second_runs (range in the table); images_per_second = "
                        "images * cycles_per_second / cycles"}
            self.write()

    def speed_repeats(self, sim):
        """Runs of ``sim`` in the speed comparison (``--quick``: at most 2)."""
        n = SPEED_REPEATS.get(sim, 1)
        return min(n, 2) if self.args.quick else n

    def layer64(self):
        from bnnflow.hw.bench import synth_mvtu

        pipelines = sorted({*LAYER64_PIPELINES, self.args.pipeline})
        for arch in ("ice40", "ecp5"):
            for pipeline in pipelines:
                self.say(f"64x64 fully parallel MVTU, Yosys synth_{arch}, pipeline {pipeline}")
                start = time.perf_counter()
                cells = synth_mvtu(64, 64, 64, 64, pipeline, arch)["cells"]
                lut4 = cells.get("SB_LUT4" if arch == "ice40" else "LUT4", 0)
                carry = cells.get("SB_CARRY" if arch == "ice40" else "CCU2C", 0)
                self.results["layer64"].append({
                    "arch": arch, "pipeline": pipeline, "cells": cells, "lut4": lut4,
                    "carry": carry, "lut4_per_synapse": round(lut4 / 4096, 4),
                    "lut4_with_carry_per_synapse": (round((lut4 + 2 * carry) / 4096, 4)
                                                    if arch == "ecp5" else None),
                    "yosys_seconds": round(time.perf_counter() - start, 1),
                    "command": f"python -m bnnflow.hw.bench synth 64 64 --arch {arch} "
                               f"--pipeline {pipeline}"})
                self.write()

    def synth_plan(self):
        """(case, target, ii or None for fit_folding), smallest estimated design first, so a
        time budget or a stalled tool costs the biggest rows, not the goal rows."""
        plan = [(c, t, None) for c in self.cases for t in self.targets]
        if not self.args.quick:
            plan += [(c, t, ii) for c in self.cases for t in self.targets
                     for ii in EXTRA_IIS.get(c, {}).get(t, [])]
        return sorted(plan, key=self._estimated_size)

    def _estimated_size(self, step):
        """Estimated logic cells of a plan step (0 when ``fit_folding`` finds no folding: that
        row costs nothing to record)."""
        from bnnflow.boards.estimate import estimate_logic
        from bnnflow.boards.fit import DoesNotFit, fit_folding
        from bnnflow.boards.targets import get_target
        from bnnflow.hw.folding import auto_fold

        case, target, ii = step
        model, _ = self.models[case]
        try:
            folding, _ = (fit_folding(model, target, pipeline=self.args.pipeline) if ii is None
                          else auto_fold(model, ii))
        except DoesNotFit:
            return 0
        return estimate_logic(model, folding, get_target(target).family, self.args.pipeline)

    def synth(self, case, target, ii):
        from bnnflow.boards.estimate import ROM_REGISTER
        from bnnflow.boards.fit import DoesNotFit, fit_folding
        from bnnflow.boards.synth import synthesize
        from bnnflow.boards.targets import get_target
        from bnnflow.errors import BnnflowError
        from bnnflow.hw.folding import auto_fold

        label = f"{case} {target} " + ("fit_folding" if ii is None else f"auto II {ii}")
        if self.over_budget():
            self.say(f"skip {label}: over the {self.args.budget_minutes} min budget")
            self.results["skipped"].append(f"synthesis {label} (time budget)")
            self.write()
            return
        model, _ = self.models[case]
        entry = self.results["cases"][case]
        row = {"target": target, "choice": "fit_folding" if ii is None else f"auto II {ii}",
               "pipeline": self.args.pipeline}
        try:
            folding, _ = (fit_folding(model, target, pipeline=self.args.pipeline) if ii is None
                          else auto_fold(model, ii))
        except DoesNotFit as e:
            return self.no_result(label, entry, row, False, str(e))
        fold_text = ",".join(str(f) for f in folding)
        fully = all(f.pe == n and f.simd == k for f, k, n in
                    zip(folding, entry["widths"][:-1], entry["widths"][1:], strict=True))
        row.update(folding=fold_text, fully_parallel=fully)
        self.say(f"synthesize {label}: {fold_text}")
        try:
            rep = synthesize(model, target, folding, pipeline=self.args.pipeline,
                             out_dir=self.work / case / "synth" / f"{target}_{fold_text}",
                             progress=self.say,
                             pnr_timeout=60 * self.args.pnr_timeout_minutes or None)
        except DoesNotFit as e:
            return self.no_result(label, entry, row, False, str(e))
        except BnnflowError as e:  # a tool failed or was stopped: record it, go on
            return self.no_result(label, entry, row, None, f"tool failure: {failure_summary(e)}")
        lut4 = rep["lut4"]
        lut4_carry = lut4 + (2 * rep["carry"] if rep["family"] == "ecp5" else 0)
        syn = entry["synapses"]
        row.update(fits=True, lut4=lut4, lut4_with_carry=lut4_carry, ff=rep["ff"],
                   carry=rep["carry"], bram=rep["bram"], logic_cells=rep["logic_cells"],
                   utilization_logic=rep["utilization"]["logic"], fmax_mhz=rep["fmax_mhz"],
                   freq_constraint_mhz=rep["freq_constraint_mhz"],
                   timing_met=rep["timing_met"], ii=rep["ii"], latency=rep["latency"],
                   images_per_second=rep["images_per_second"],
                   lut4_per_synapse_per_cycle=round(lut4 * rep["ii"] / syn, 4),
                   synapses_per_cycle_per_lut4=round(syn / rep["ii"] / lut4, 4),
                   step_seconds=rep["step_seconds"])
        row["rom_register"] = ROM_REGISTER[get_target(target).family]
        row.update(self.measure_timing(case, folding, fold_text, row["rom_register"]))
        entry["synthesis"].append(row)
        self.write()

    def no_result(self, label, entry, row, fits, error):
        """Record a synthesis row without figures (``fits`` False: does not fit; None: a tool
        failed)."""
        row.update(fits=fits, error=error)
        entry["synthesis"].append(row)
        self.say(f"{label}: {error}")
        self.write()

    def measure_timing(self, case, folding, fold_text, rom_register):
        """Measured II and latency of a synthesized design (simulation, first images)."""
        from bnnflow.sim.verify import TIMING_IMAGES, run_verify

        ver = self.results["cases"][case]["verification"]
        if (ver["folding"] == fold_text and ver["pipeline"] == self.args.pipeline
                and not rom_register):
            return {"ii_measured": ver["ii_measured"],
                    "latency_measured": ver["latency_measured"],
                    "timing_measured_by": f"{ver['simulator']}, whole test split"}
        if self.over_budget():
            self.results["skipped"].append(f"II measurement {case} {fold_text} (time budget)")
            return {"ii_measured": None, "latency_measured": None, "timing_measured_by": None}
        self.say(f"measure II and latency of {case} {fold_text} on {self.fast_sim}")
        model, _ = self.models[case]
        rep = run_verify(model, simulator=self.fast_sim, folding=folding,
                         pipeline=self.args.pipeline, images=TIMING_IMAGES,
                         build_root=self.build_root, rom_register=rom_register)
        return {"ii_measured": rep["ii_measured"], "latency_measured": rep["latency_measured"],
                "timing_measured_by": f"{self.fast_sim}, {rep['images']} images, "
                                      f"{rep['mismatches']} mismatches",
                "timing_build_seconds": rep["build_seconds"]}


# --- helpers ----------------------------------------------------------------------------------

def failure_summary(error):
    """One line for a tool failure: the message's first line and, from the log tail that
    follows it, the tool's last ``ERROR`` line (else its last non-empty line)."""
    lines = [x.strip() for x in str(error).splitlines() if x.strip()]
    if not lines:
        return type(error).__name__
    rest = lines[1:]
    errors = [x for x in rest if x.upper().startswith("ERROR")]
    detail = errors[-1] if errors else (rest[-1] if rest else "")
    return f"{lines[0]} {detail}".strip()


def _machine():
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(),
            "note": "2 cores shared with other jobs: times are pessimistic and vary 2-3x"}


def _source_state():
    """Commit and locally modified files, plus hashes of the files the figures depend on."""
    def git(*cmd):
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    status = git("status", "--porcelain")
    hashes = {}
    for rel in ("hw/popcount.py", "hw/mvtu.py", "sim/verify.py", "sim/tools.py"):
        p = ROOT / rel
        if p.exists():
            hashes[rel] = hashlib.sha256(p.read_bytes()).hexdigest()[:16]
    return {"commit": git("rev-parse", "HEAD"),
            "modified": status.splitlines() if status else [], "sha256_16": hashes}


def _ratios(reports):
    base = reports.get("verilator", {}).get("cycles_per_second")
    if not base:
        return {}
    return {sim: round(r["cycles_per_second"] / base, 3) for sim, r in reports.items()
            if r["cycles_per_second"]}


def goal_checks(results):
    """Issue 7 targets against the measured figures: met, missed, or not measured."""
    checks = []

    def add(goal, measured, met, where):
        checks.append({"goal": goal, "measured": measured,
                       "status": "not measured" if met is None else "met" if met else "MISSED",
                       "where": where})

    speed = results.get("simulator_speed")
    direct = cocotb = None
    on_sfc = speed is not None and speed["widths"] == [784, 256, 256, 256, 10]
    if speed is not None:
        direct = speed["simulators"].get("verilator-direct", {}).get("cycles_per_second")
        cocotb = speed["simulators"].get("verilator", {}).get("cycles_per_second")
    where = f"simulator speed on {speed['case']}" if speed else "simulator speed"
    add(">= 1,000,000 cycles/s with verilator-direct on sfc", direct,
        None if direct is None or not on_sfc else direct >= GOALS["direct_cycles_per_second_sfc"],
        where)
    ratio = round(direct / cocotb, 2) if direct and cocotb else None
    add("verilator-direct >= 20x cocotb + Verilator on sfc", ratio,
        None if ratio is None or not on_sfc else ratio >= GOALS["direct_over_cocotb_verilator"],
        where)
    tfc = results["cases"].get("tfc-digits", {})
    fitted = [r for r in tfc.get("synthesis", []) if r["target"] == "ice40-up5k"
              and r.get("fits") and r["choice"] == "fit_folding"]
    same_ii = fitted[0]["ii"] if fitted else None
    for target, goal in GOALS["tfc_fmax_mhz"].items():
        # At the UP5K's fit_folding II on both targets ("at the same II"), else fit_folding.
        rows = [r for r in tfc.get("synthesis", []) if r["target"] == target and r.get("fits")
                and r["ii"] == same_ii and r.get("fmax_mhz")]
        rows = rows or [r for r in tfc.get("synthesis", []) if r["target"] == target
                        and r.get("fits") and r["choice"] == "fit_folding"]
        fmax = rows[0]["fmax_mhz"] if rows else None
        add(f"tfc Fmax >= {goal:g} MHz on {target} (pipeline {results['settings']['pipeline']})",
            fmax, None if fmax is None else fmax >= goal,
            f"tfc-digits {target} " + (f"{rows[0]['folding']}, II {rows[0]['ii']}"
                                       if rows else "fit_folding"))
    for arch, goal in GOALS["layer64_lut4_per_synapse"].items():
        rows = [r for r in results.get("layer64", []) if r["arch"] == arch] or [None]
        for row in rows:
            value = row["lut4_per_synapse"] if row else None
            carry = row.get("lut4_with_carry_per_synapse") if row else None
            depth = f", pipeline {row['pipeline']}" if row else ""
            add(f"fully parallel 64x64 layer <= {goal} LUT4/synapse on {arch} (LUT4 cells "
                f"only{depth})", value, None if value is None else value <= goal,
                "hw.bench.synth_mvtu 64x64" + (f"; {carry} counting each CCU2C as 2 LUT4"
                                               if carry is not None else ""))
    pairs = []
    for case, entry in results["cases"].items():
        ver = entry.get("verification")
        if ver:
            pairs.append((f"{case} verify {ver['folding']}", ver["ii_measured"],
                          ver["ii_expected"]))
        for r in entry.get("synthesis", []):
            if r.get("fits"):
                pairs.append((f"{case} {r['target']} {r['folding']}", r.get("ii_measured"),
                              r["ii"]))
    measured = [p for p in pairs if p[1] is not None]
    bad = [p[0] for p in measured if p[1] != p[2]]
    add("measured II == analytic II for every configuration",
        f"{len(measured) - len(bad)} of {len(pairs)} equal" + (f"; differ: {bad}" if bad else "")
        + (f"; {len(pairs) - len(measured)} not measured" if len(measured) < len(pairs) else ""),
        False if bad else None if len(measured) < len(pairs) else True, "all tables")
    return checks


def _fmt(value, spec=""):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return format(value, spec)


def _runs(runs):
    runs = [x for x in (runs or []) if x]
    if len(runs) < 2:
        return f"{len(runs)}"
    return f"{len(runs)}: {min(runs):,.0f}-{max(runs):,.0f}"


def _pct(value):
    return "-" if value is None else f"{100 * value:.2f} %"


def markdown(r):
    """The results as Markdown tables."""
    lines = ["# bnnflow benchmark (issue 7)", ""]
    state = "complete run" if r["complete"] else "INCOMPLETE run"
    failed = [f"{case} {row['target']} {row['choice']}" for case, entry in r["cases"].items()
              for row in entry.get("synthesis", []) if row.get("fits") is None
              and row.get("error")]
    if failed:
        state += (f" (every step ran, but {len(failed)} synthesis row(s) have no figures "
                  f"because a tool failed or hit its time limit: {'; '.join(failed)})")
    if r["quick"]:
        state += " (--quick: a smoke test, not the full benchmark)"
    lines += [f"{state}, started {r['started_utc']} UTC, command `{r['command']}`; "
              f"{r['machine']['cpus']} CPUs ({r['machine']['note']}); commit "
              f"{(r['source']['commit'] or '?')[:10]} with {len(r['source']['modified'])} "
              f"locally modified files. Hardware simulator: "
              f"{r['settings']['hardware_simulator']}; popcount pipeline "
              f"{r['settings']['pipeline']}.", ""]
    if r["skipped"]:
        lines += ["Not measured (skipped): " + "; ".join(r["skipped"]) + ".", ""]

    lines += ["## Accuracy (test split)", "",
              "| case | widths | float baseline | binary PyTorch | golden | hardware (images, "
              "mismatches) | equal |", "|---|---|---|---|---|---|---|"]
    for case, e in r["cases"].items():
        a = e["accuracy"]
        hw = (f"{_pct(a['hardware'])} ({_fmt(a['hardware_images'])}, "
              f"{_fmt(a['hardware_mismatches'])})")
        lines.append(f"| {case} | {'-'.join(map(str, e['widths']))} | "
                     f"{_pct(a['float_baseline'])} | {_pct(a['binary_pytorch'])} | "
                     f"{_pct(a['golden'])} | {hw} | {_fmt(a['equal'])} |")
    lines += ["", f"`equal`: {r['formulas']['equal']}; hardware accuracy: "
              f"{r['formulas']['hardware_accuracy']}.", ""]

    lines += ["## Hardware (out of context, with the serial I/O wrapper)", "",
              "| case | target | choice | folding | LUT4 | FF | BRAM | Fmax MHz | II "
              "(measured) | latency (measured) | images/s | LUT4/synapse/cycle | yosys s | "
              "nextpnr s |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for case, e in r["cases"].items():
        for s in e["synthesis"]:
            if not s.get("fits"):
                what = "no result" if s.get("fits") is None else "does not fit"
                lines.append(f"| {case} | {s['target']} | {s['choice']} | "
                             f"{s.get('folding', '-')} | {what}: {s['error']} "
                             f"| | | | | | | | | |")
                continue
            steps = s["step_seconds"]
            lut = str(s["lut4"]) + (f" ({s['lut4_with_carry']} w/ carry)"
                                    if s["lut4_with_carry"] != s["lut4"] else "")
            lines.append(
                f"| {case} | {s['target']} | {s['choice']} | {s['folding']} | {lut} | {s['ff']} "
                f"| {s['bram']} | {_fmt(s['fmax_mhz'], '.1f')} | {s['ii']} "
                f"({_fmt(s.get('ii_measured'))}) | {s['latency']} "
                f"({_fmt(s.get('latency_measured'))}) | {_fmt(s['images_per_second'], ',.0f')} "
                f"| {s['lut4_per_synapse_per_cycle']:.3f} | {_fmt(steps.get('yosys'), '.0f')} | "
                f"{_fmt(steps.get('nextpnr'), '.0f')} |")
    lines += ["", f"{r['formulas']['synapses']}. images/s = Fmax / II.", ""]

    if r["layer64"]:
        lines += ["## Fully parallel 64x64 layer (Yosys only)", "",
                  "| arch | pipeline | LUT4 | carry | LUT4/synapse | with carry | command |",
                  "|---|---|---|---|---|---|---|"]
        for x in r["layer64"]:
            lines.append(f"| {x['arch']} | {x['pipeline']} | {x['lut4']} | {x['carry']} | "
                         f"{x['lut4_per_synapse']:.3f} | "
                         f"{_fmt(x['lut4_with_carry_per_synapse'], '.3f')} | `{x['command']}` |")
        lines.append("")

    sp = r["simulator_speed"]
    if sp:
        lines += [f"## Verification speed ({sp['case']}, {'-'.join(map(str, sp['widths']))}, "
                  f"folding {sp['folding']}, pipeline {sp['pipeline']})", "",
                  "| simulator | passed | images | cycles | cycles/s (median) | runs: range "
                  "| images/s | x cocotb+Verilator | build s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        names = {"amaranth": "Amaranth", "icarus": "cocotb + Icarus",
                 "verilator": "cocotb + Verilator", "verilator-direct": "verilator-direct"}
        for sim, s in sp["simulators"].items():
            lines.append(f"| {names.get(sim, sim)} | {_fmt(s['passed'])} | {s['images']} | "
                         f"{s['cycles']} | {_fmt(s['cycles_per_second'], ',.0f')} | "
                         f"{_runs(s.get('cycles_per_second_runs'))} | "
                         f"{_fmt(s['images_per_second'], ',.0f')} | "
                         f"{_fmt(sp['ratios_to_cocotb_verilator'].get(sim), '.2f')} | "
                         f"{s['build_seconds']:.1f} |")
        lines += ["", sp["note"] + ".", ""]

    lines += ["## Tool times (seconds)", "",
              "| case | train (binary) | train + float baseline | Verilog generation (design) | "
              "Verilator build | yosys (sum) | nextpnr (sum) |", "|---|---|---|---|---|---|---|"]
    for case, e in r["cases"].items():
        t = e["tool_seconds"]
        ys = [s["step_seconds"].get("yosys", 0) for s in e["synthesis"] if s.get("fits")]
        np_ = [s["step_seconds"].get("nextpnr", 0) for s in e["synthesis"] if s.get("fits")]
        gen = t.get("verilog_generation")
        lines.append(f"| {case} | {t['train_binary']:.1f} | "
                     f"{t['train_total_with_float_baseline']:.1f} | "
                     f"{_fmt(gen, '.1f')} ({t.get('verilog_generation_design', '-')}) | "
                     f"{_fmt(t.get('verilator_build'), '.1f')} "
                     f"({t.get('verilator_build_simulator', '-')}) | "
                     f"{sum(ys):.0f} ({len(ys)} runs) | {sum(np_):.0f} ({len(np_)} runs) |")
    lines.append("")

    lines += ["## Issue 7 targets", "", "| target | measured | status | where |",
              "|---|---|---|---|"]
    for c in r["goal_checks"]:
        lines.append(f"| {c['goal']} | {_fmt(c['measured'])} | {c['status']} | {c['where']} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
