"""``verify``: stream images through the generated hardware and compare with the golden model.

:func:`run_verify` generates the design (:class:`bnnflow.hw.top.BnnTop` for Amaranth's
simulator, :func:`bnnflow.hw.verilog.generate` for Verilator and Icarus), runs the shared
stream bench (:mod:`bnnflow.sim.stimulus`) on it, checks every output (class and final
popcounts) bit for bit against :func:`bnnflow.model.golden.run` and returns a report.

When an output differs, the stream is run again up to the first mismatching image, with the
same seed and stalls, on a design generated with ``debug_taps=True``; each layer's tap is
compared with the golden model's ``layer_outputs()`` for that image, and the first layer that
differs is named (``"argmax"`` when every layer agrees but the output does not).

Fault injection (for tests): ``hardware_model=`` builds the hardware from another model (e.g.
a copy with one weight bit flipped) while the golden model keeps ``model``; ``fault=`` is
passed to ``BnnTop`` (``("drop_ready", j)``).

Timing: the first ``TIMING_IMAGES`` images of every run are fed back to back, with the output
always ready, right after reset (the *timing phase*; their outputs are checked too). The
latency is measured on the first of them, the II as the mean output spacing over the second
half of the phase; both are compared with the sidecar's analytic values and a difference fails
the run.

Reset in the middle of the stream (``reset_mid_stream=True``; off by default): once
``reset_after`` main-phase images (default: half of them) have transferred in, the bench holds
``o.ready`` low until an output waits in the output register and the next image is offered but
not taken, then asserts the synchronous ``rst`` for one cycle, and sends again every image
whose output had not arrived (:mod:`bnnflow.sim.stimulus` has the rules; every back end applies
the same reset at the same edge). Every output is checked as usual, those before the reset
included; an output after the reset sooner than the sidecar's latency after its image's new
input transfer is stale (left over from before the reset) and counts as a mismatch. The
report's ``reset_mid_stream`` says whether and at which edge the reset was applied; a requested
reset that was not applied fails the run.
"""

import time

import numpy as np

from ..errors import BnnflowError
from ..fileio import write_text_atomic
from ..model import golden
from . import stimulus
from .backend import BACKENDS, TOP_NAME, SimJob
from .stimulus import OutputLayout, Scoreboard, bits_to_int

__all__ = ["TOP_NAME", "TIMING_IMAGES", "DEFAULT_IMAGES", "HwDesign", "select_inputs",
           "run_verify", "write_report"]

TIMING_IMAGES = 8
#: Default number of images per simulator (None: the whole test split).
DEFAULT_IMAGES = {"amaranth": 100, "icarus": 100, "verilator": None,
                  "verilator-direct": None}

RESET_NOTE = ("edge: bench edges counted from 0 at the first edge after the initial reset, "
              "timing phase included (as cycles); rst was high at that edge; images sent "
              "again from restart_image; stale outputs: transfers after the reset sooner than "
              "the sidecar latency after their image's new input transfer, each a mismatch")

TIMING_NOTE = (f"measured in a stall-free timing phase right after reset: {TIMING_IMAGES} "
               "images (the first stimulus images, repeated if fewer) fed back to back with "
               "o.ready held high; latency = edges from the first input transfer to the first "
               "output transfer; II = mean spacing of output transfers over the second half of "
               "the phase")


class HwDesign:
    """The hardware under test: ``BnnTop`` / ``generate()`` of :mod:`bnnflow.hw`.

    Any object with a ``model`` attribute and these two methods can be verified instead (the
    ``design=`` argument of :func:`run_verify`).

    Parameters
    ----------
    model : BnnModel
        The model the hardware is generated from.
    folding : list of LayerFold or None
    pipeline : int
    fault : tuple or None
        Passed to ``BnnTop`` (tests only).
    rom_register : bool
        Passed to ``BnnTop``: a register on each weight ROM's output (the ECP5 synthesis
        default, :data:`bnnflow.boards.estimate.ROM_REGISTER`).
    """

    def __init__(self, model, folding=None, pipeline=0, fault=None, rom_register=False):
        self.model = model
        self.folding = folding
        self.pipeline = pipeline
        self.fault = fault
        self.rom_register = rom_register

    def component(self, debug_taps=False):
        """``(component, sidecar)`` for Amaranth's simulator."""
        from ..hw.top import BnnTop

        top = BnnTop(self.model, self.folding, self.pipeline, debug_taps=debug_taps,
                     fault=self.fault, rom_register=self.rom_register)
        return top, top.sidecar()

    def verilog(self, debug_taps=False):
        """``(verilog_text, sidecar)`` with top module :data:`TOP_NAME`."""
        from ..hw.verilog import generate

        return generate(self.model, self.folding, self.pipeline, name=TOP_NAME,
                        debug_taps=debug_taps, fault=self.fault,
                        rom_register=self.rom_register)


def _check_inputs(model, bits, where):
    bits = np.asarray(bits)
    k0 = model.input.width
    if bits.ndim != 2 or bits.shape[1] != k0:
        raise BnnflowError(f"{where}: input bits must have shape (B, {k0}), not "
                           f"{tuple(bits.shape)}")
    if bits.shape[0] == 0:
        raise BnnflowError(f"{where}: no input vectors")
    if bits.dtype.kind not in "biu" or np.any((bits != 0) & (bits != 1)):
        raise BnnflowError(f"{where}: input bits must be integers 0 or 1")
    return bits.astype(np.uint8)


def select_inputs(model, inputs=None, images=None):
    """The stimulus: ``(bits (B, K0), image ids, source text)``.

    ``inputs`` is None (the model's test split, encoded with ``model.input.encode``), an array
    of bits, or a path to a ``.npy`` of bits. ``images`` takes the first N (None: all).
    """
    if inputs is None:
        from ..model import data

        raw, _labels = data.test_split_for(model)
        bits = model.input.encode(raw)
        source = f"test split of {model.provenance.get('dataset', '?')}"
    elif isinstance(inputs, np.ndarray):
        bits = _check_inputs(model, inputs, "inputs")
        source = "input array"
    else:
        try:
            array = np.load(inputs, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise BnnflowError(f"{inputs}: cannot read input bits: {e} (expected a .npy of "
                               f"shape (B, {model.input.width}) holding 0/1)") from None
        bits = _check_inputs(model, array, str(inputs))
        source = str(inputs)
    if images is not None:
        if not isinstance(images, int) or isinstance(images, bool) or images < 1:
            raise BnnflowError(f"images must be a positive integer or 'all', not {images!r}")
        bits = bits[:images]
    return np.asarray(bits, dtype=np.uint8), list(range(len(bits))), source


def _pack_popcounts(popcounts, width):
    value = 0
    for c, p in enumerate(popcounts):
        value |= int(p) << (c * width)
    return value


def _golden_tap_values(result, k, pw):
    """Golden per-layer outputs of stream item ``k`` packed like the hardware taps."""
    outs = result.layer_outputs()
    values = [bits_to_int(a[k]) for a in outs[:-1]]
    values.append(_pack_popcounts(outs[-1][k], pw))
    return values


class _Progress:
    """A rich progress display on stderr, or nothing."""

    def __init__(self, enabled):
        self.progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(),
                                     console=Console(stderr=True), transient=False)

    def __enter__(self):
        if self.progress is not None:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def task(self, description, total=None):
        if self.progress is None:
            return None
        return self.progress.add_task(description, total=total)

    def update(self, task, **kw):
        if self.progress is not None and task is not None:
            self.progress.update(task, **kw)


def _simulate(simulator, design, main_bits, timing_bits, *, progress, **options):
    """Run one bench on the back end :data:`BACKENDS` names; return its :class:`SimResult`.

    ``options`` are the other fields of :class:`SimJob` (stall, seed, debug_taps, vcd,
    build_root, reset_after, expected, label).
    """
    job = SimJob([bits_to_int(b) for b in main_bits], [bits_to_int(b) for b in timing_bits],
                 **options)
    return BACKENDS[simulator](design, job, progress)


def _expected(result, order):
    return {"classes": [int(result.classes[k]) for k in order],
            "popcounts": [[int(v) for v in result.popcounts[k]] for k in order]}


def _first_layer(model, result, k, tap_data, pw):
    """Name and index of the first layer whose tap differs from golden for stream item ``k``."""
    want = _golden_tap_values(result, k, pw)
    for j, layer in enumerate(model.layers):
        got = tap_data[j][k] if k < len(tap_data[j]) else None
        if got != want[j]:
            detail = {"expected": want[j], "actual": got}
            if got is not None and not layer.is_output:
                diff = want[j] ^ got
                detail["neurons"] = [n for n in range(layer.out_width) if diff >> n & 1][:16]
            return layer.name, j, detail
    return "argmax", len(model.layers), None


def run_verify(model, *, simulator="amaranth", fold=None, ii=None, pipeline=0, folding=None,
               inputs=None, images=None, stall=0.0, seed=0, vcd=None, report=None,
               hardware_model=None, fault=None, design=None, build_root=None,
               show_progress=False, rom_register=False, reset_mid_stream=False,
               reset_after=None, target=None):
    """Verify the generated hardware of ``model`` against its golden model.

    Parameters
    ----------
    model : BnnModel
        The golden model (and, unless ``hardware_model`` is given, the hardware's model).
    simulator : {"amaranth", "verilator", "icarus", "verilator-direct"}
    fold, ii : str or None, int or None
        Folding as in ``bnnflow verilog`` (``hw.folding.resolve_folding``); ignored when
        ``folding`` (a list of LayerFold) is given.
    pipeline : int
        Register stages of the popcount adder trees.
    inputs : None, array or path
        Input bits ``(B, K0)``; None streams the model's data-set test split.
    images : int or None
        Use the first N vectors (None: all of them).
    stall : float
        Probability of a gap before each input and of back-pressure in each cycle, in [0, 1).
    seed : int
        Seed of the gaps and back-pressure.
    vcd : path or None
        Write the main run's waveform there (VCD).
    report : path or None
        Write the report there as JSON (atomically).
    hardware_model : BnnModel or None
        Fault injection: generate the hardware from this model instead (same layer sizes).
    fault : tuple or None
        Fault injection: passed to ``BnnTop`` (``("drop_ready", j)``).
    design : object or None
        The hardware under test (default :class:`HwDesign`); any object with its interface.
    build_root : path or None
        Where Verilator/Icarus builds are cached (default
        :func:`bnnflow.sim.cocotb_sim.default_build_root`).
    show_progress : bool
        Show rich progress bars on stderr.
    rom_register : bool
        A register on each weight ROM's output (:class:`bnnflow.hw.mvtu.MVTU`); same results,
        II and latency.
    reset_mid_stream : bool
        Assert the synchronous reset once in the middle of the main phase, with images in the
        pipeline, then send again the images whose outputs had not arrived (module docstring).
    reset_after : int or None
        With ``reset_mid_stream``: main-phase images transferred in before the reset, in
        ``1..images-1`` (None: half of the images, rounded down, at least 1).
    target : str or None
        The device whose synthesis options the caller chose (``bnnflow verify --target``);
        only recorded in the report (``"target"``, beside the ``"rom_register"`` verified).

    Returns
    -------
    dict
        The report (keys in the module docstring of :mod:`bnnflow.sim.cli_verify`).

    Raises
    ------
    BnnflowError
        Bad input (folding, inputs, stall, simulator name, reset_after).
    ToolError
        The simulator is missing or its build failed.
    """
    from . import tools

    started = time.monotonic()
    if simulator not in tools.SIMULATORS:
        raise BnnflowError(f"unknown simulator {simulator!r}: choose one of "
                           f"{', '.join(tools.SIMULATORS)}")
    stall = float(stall)
    if not 0.0 <= stall < 1.0:
        raise BnnflowError(f"stall must be a probability in [0, 1), not {stall!r}")
    tools.check_simulator(simulator)
    hw_model = model if hardware_model is None else hardware_model
    if hw_model.widths != model.widths:
        raise BnnflowError(f"hardware_model must have the layer widths of the model "
                           f"{model.widths}, not {hw_model.widths}")
    if design is None:
        if folding is None:
            from ..hw.folding import resolve_folding

            try:
                folding = resolve_folding(hw_model, fold, ii)
            except (ValueError, OSError) as e:
                raise BnnflowError(f"bad folding: {e}") from None
        design = HwDesign(hw_model, folding, pipeline, fault, rom_register)

    if reset_after is not None and not reset_mid_stream:
        raise BnnflowError(f"reset_after={reset_after!r} needs reset_mid_stream=True")
    bits, ids, source = select_inputs(model, inputs, images)
    n = len(bits)
    if reset_mid_stream:
        if reset_after is None:
            reset_after = max(1, n // 2)
        try:
            stimulus.check_reset_after(reset_after, n)
        except ValueError as e:
            raise BnnflowError(str(e)) from None
    timing_order = [i % n for i in range(TIMING_IMAGES)]
    gold = golden.run(model, bits)
    expected = {"timing": _expected(gold, timing_order), "main": _expected(gold, range(n))}

    with _Progress(show_progress) as progress:
        results = _simulate(
            simulator, design, bits, bits[timing_order], expected=expected, stall=stall,
            seed=seed, debug_taps=False, vcd=vcd, build_root=build_root, progress=progress,
            label="verify", reset_after=reset_after)
        sidecar = results.sidecar
        layout = OutputLayout.from_sidecar(sidecar)
        main = Scoreboard(gold.classes, gold.popcounts, layout, ids)
        mismatches = main.check(results.outputs["main"])
        timing = Scoreboard(gold.classes[timing_order], gold.popcounts[timing_order], layout,
                            [ids[i] for i in timing_order])
        timing_mismatches = timing.check(results.outputs["timing"])

        first = None
        if mismatches:
            m = mismatches[0]
            k = ids.index(m.image)
            # Up to image k the rerun sees the same stalls; with a reset it needs every image
            # (the reset's edge depends on the images still to send).
            last = n if reset_mid_stream else k + 1
            diag = _simulate(
                simulator, design, bits[:last], bits[timing_order],
                expected={"timing": expected["timing"],
                          "main": _expected(gold, range(last))},
                stall=stall, seed=seed, debug_taps=True, vcd=None, build_root=build_root,
                progress=progress, label="diagnose", reset_after=reset_after)
            name, index, detail = _first_layer(model, gold, k, diag.tap_data,
                                               layout.popcount_width)
            first = {**m.to_dict(), "layer": name, "layer_index": index,
                     "layer_detail": detail}

    reset_rep = None
    stale = []
    if reset_mid_stream:
        reset_rep, stale = _reset_report(results, reset_after, ids, layout, sidecar)
    latency, ii_measured = results.latency, results.ii
    timing_ok = latency == sidecar["latency"] and ii_measured == sidecar["ii"]
    cycles = int(results.cycles)
    loop = results.loop_seconds
    rep = {
        "simulator": simulator,
        "model_checksum": sidecar.get("model_checksum"),
        "source": source,
        "images": n,
        "stall": stall,
        "seed": int(seed),
        "folding": [[layer["pe"], layer["simd"]] for layer in sidecar.get("layers", [])],
        "pipeline": sidecar.get("pipeline", pipeline),
        "rom_register": any(layer.get("rom_register") for layer in sidecar.get("layers", [])),
        "target": target,
        "fault": list(fault) if fault is not None else None,
        "hardware_model_differs": hardware_model is not None,
        "mismatches": len(mismatches) + len(stale),
        "timing_mismatches": len(timing_mismatches),
        "missing_outputs": sum(1 for m in mismatches if m.actual is None),
        "stuck": results.stuck,
        "first_mismatch": first,
        "cycles": cycles,
        "ii_measured": ii_measured,
        "ii_expected": sidecar["ii"],
        "latency_measured": latency,
        "latency_expected": sidecar["latency"],
        "timing_ok": timing_ok,
        "timing_note": TIMING_NOTE,
        "build_seconds": round(results.build_seconds, 3),
        "sim_seconds": round(results.sim_seconds, 3),
        "wall_seconds": round(time.monotonic() - started, 3),
        "loop_seconds": round(loop, 3),
        "cycles_per_second": round(cycles / loop, 1) if loop > 0 else None,
        "cycles_per_second_note": "cycles (both phases) / wall time of the bench's clock loop "
                                  "(simulator start-up, elaboration and builds excluded; "
                                  "sim_seconds includes start-up)",
        "vcd": str(vcd) if vcd is not None else None,
        "reset_mid_stream": reset_rep,
    }
    rep["passed"] = (not mismatches and not timing_mismatches and timing_ok and not stale
                     and (reset_rep is None or reset_rep["applied"]))
    if report is not None:
        write_report(rep, report)
    return rep


def _reset_report(results, reset_after, ids, layout, sidecar):
    """The report's ``reset_mid_stream`` entry, and the stale outputs."""
    info = results.reset
    stale = results.stale
    entry = {"after": reset_after, "applied": info is not None, "edge": None,
             "images_in_flight": None, "input_waiting": None, "restart_image": None,
             "stale_outputs": len(stale), "stale": [], "min_latency": int(sidecar["latency"]),
             "note": RESET_NOTE}
    if info is not None:
        entry.update(edge=int(info["edge"]), images_in_flight=int(info["in_flight"]),
                     input_waiting=bool(info["input_waiting"]),
                     restart_image=ids[int(info["restart"])])
    for edge, payload in stale[:16]:
        cls, pcs = layout.decode(payload)
        entry["stale"].append({"edge": int(edge), "class": cls, "popcounts": pcs})
    return entry, stale


def write_report(rep, path):
    """Write a report dict as JSON, atomically."""
    import json

    write_text_atomic(path, json.dumps(rep, indent=2) + "\n")
