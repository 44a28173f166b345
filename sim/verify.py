"""``verify``: stream images through the generated hardware and compare with the golden model.

:func:`run_verify` generates the design (:class:`bnnflow.hw.top.BnnTop` for Amaranth's
simulator, :func:`bnnflow.hw.verilog.generate` for Verilator and Icarus), runs the shared
stream bench (:mod:`bnnflow.sim.stimulus`) on it, checks every output (class and final
popcounts) bit for bit against :func:`bnnflow.model.golden.run` and returns a report.

The design runs on the back end :data:`bnnflow.sim.backend.BACKENDS` names for the simulator.
When an output differs, :func:`bnnflow.sim.diagnose.first_mismatch` runs the stream again up to
the first mismatching image, with the same seed and stalls, on a design generated with
``debug_taps=True``, and names the first layer whose tap differs from the golden model
(``"argmax"`` when every layer agrees but the output does not). The report is built and written
by :mod:`bnnflow.sim.verify_report`.

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
from ..model import golden
from ..model.conventions import pack_int
from . import stimulus
from .backend import BACKENDS, TOP_NAME, SimJob, golden_expected
from .diagnose import first_mismatch
from .scoreboard import OutputLayout, Scoreboard
from .verify_report import TIMING_IMAGES, build_report, write_report

__all__ = ["TOP_NAME", "TIMING_IMAGES", "DEFAULT_IMAGES", "HwDesign", "select_inputs",
           "run_verify", "write_report"]

#: Default number of images per simulator (None: the whole test split).
DEFAULT_IMAGES = {"amaranth": 100, "icarus": 100, "verilator": None,
                  "verilator-direct": None}

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


def expected_inputs(model):
    """What an inputs file must hold for ``model``, for error messages."""
    top = (1 << model.input.bits) - 1
    values = "0/1" if top == 1 else f"integers 0..{top} ({model.input.bits}-bit pixels)"
    return f"a .npy of shape (B, {model.input.width}) holding {values}"


def _check_inputs(model, bits, where):
    bits = np.asarray(bits)
    k0 = model.input.width
    if bits.ndim != 2 or bits.shape[1] != k0:
        raise BnnflowError(f"{where}: inputs must have shape (B, {k0}), not "
                           f"{tuple(bits.shape)}; expected {expected_inputs(model)}")
    if bits.shape[0] == 0:
        raise BnnflowError(f"{where}: no input vectors; expected {expected_inputs(model)}")
    top = (1 << model.input.bits) - 1
    if bits.dtype.kind not in "biu" or np.any((bits < 0) | (bits > top)):
        raise BnnflowError(f"{where}: input bits must be integers 0 or 1" if top == 1 else
                           f"{where}: inputs must be integers in 0..{top} "
                           f"({model.input.bits}-bit pixels)")
    return bits.astype(np.uint8)


#: Random inputs that stand in for a test split when the model names no data set.
RANDOM_INPUTS = 512


def select_inputs(model, inputs=None, images=None):
    """The stimulus: ``(bits (B, K0), image ids, source text)``.

    ``inputs`` is None (the model's test split, encoded with ``model.input.encode``; for a model
    that names no data set, such as one imported with ``--dataset none``,
    :data:`RANDOM_INPUTS` seeded random inputs), an array of bits, or a path to a ``.npy`` of
    bits. ``images`` takes the first N (None: all).
    """
    if inputs is None and (model.provenance or {}).get("dataset") is None:
        from ..model import data

        bits = data.random_inputs(model, RANDOM_INPUTS)
        source = "random inputs (the model names no data set; --inputs FILE.npy gives others)"
    elif inputs is None:
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
        except (OSError, ValueError, EOFError) as e:
            why = ("not a .npy array" if "allow_pickle" in str(e)   # not that advice
                   else "the file is empty" if isinstance(e, EOFError) else str(e))
            raise BnnflowError(f"{inputs}: cannot read the inputs: {why} (expected "
                               f"{expected_inputs(model)})") from None
        bits = _check_inputs(model, array, str(inputs))
        source = str(inputs)
    if images is not None:
        if not isinstance(images, int) or isinstance(images, bool) or images < 1:
            raise BnnflowError(f"images must be a positive integer or 'all', not {images!r}")
        bits = bits[:images]
    return np.asarray(bits, dtype=np.uint8), list(range(len(bits))), source


class _Progress:
    """A rich progress display on stderr (lines when stderr is not a terminal), or nothing."""

    def __init__(self, enabled):
        self.progress = None
        if enabled:
            from ..lineprogress import LineProgress, is_terminal

            if not is_terminal(stderr=True):    # a log or a pipe: a line per stage
                self.progress = LineProgress(stderr=True)
                return
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


def _simulate(simulator, design, main_bits, timing_bits, *, progress, width=1, **options):
    """Run one bench on the back end :data:`BACKENDS` names; return its :class:`SimResult`.

    ``width`` is the bits of one input element (8 for 8-bit pixels); ``options`` are the other
    fields of :class:`SimJob` (stall, seed, debug_taps, vcd, build_root, reset_after, expected,
    label).
    """
    job = SimJob([pack_int(b, width) for b in main_bits],
                 [pack_int(b, width) for b in timing_bits], **options)
    return BACKENDS[simulator](design, job, progress)


def run_verify(model, *, simulator="amaranth", fold=None, ii=None, pipeline=0, folding=None,
               inputs=None, images=None, stall=0.0, seed=0, vcd=None, report=None,
               hardware_model=None, fault=None, design=None, build_root=None,
               show_progress=False, rom_register=False, reset_mid_stream=False,
               reset_after=None, target=None, netlist=None):
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
        :func:`bnnflow.sim.build_cache.default_build_root`).
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
    netlist : {"ice40", "ecp5"} or None
        Simulate Yosys' mapped netlist of the design for that family with its cell models
        (:class:`bnnflow.sim.netlist.NetlistDesign`) instead of the generated RTL; not on
        Amaranth's simulator.

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
    started = time.monotonic()
    stall = _check_options(simulator, stall)
    if netlist is not None and simulator == "amaranth":
        raise BnnflowError("--netlist simulates Yosys' netlist, which Amaranth's simulator "
                           "cannot run: use --sim icarus, verilator or verilator-direct")
    design = _resolve_design(model, design, hardware_model, folding, fold, ii, pipeline, fault,
                             rom_register, netlist)
    if reset_after is not None and not reset_mid_stream:
        raise BnnflowError(f"reset_after={reset_after!r} needs reset_mid_stream=True")
    bits, ids, source = select_inputs(model, inputs, images)
    n = len(bits)
    if reset_mid_stream:
        reset_after = _resolve_reset_after(reset_after, n)
    options = {"stall": stall, "seed": seed, "build_root": build_root,
               "reset_after": reset_after}
    results, mismatches, timing_mismatches, first = _run_and_check(
        simulator, design, model, bits, ids, vcd=vcd, show_progress=show_progress, **options)
    settings = {"simulator": simulator, "source": source, "images": n, "stall": stall,
                "seed": seed, "pipeline": pipeline, "target": target, "fault": fault,
                "hardware_model_differs": hardware_model is not None, "vcd": vcd,
                "reset_after": reset_after, "ids": ids, "netlist": netlist}
    rep = build_report(settings, results, mismatches, timing_mismatches, first,
                       time.monotonic() - started)
    if report is not None:
        write_report(rep, report)
    return rep


def _run_and_check(simulator, design, model, bits, ids, *, vcd, show_progress, **options):
    """Run the bench, score both phases and diagnose the first mismatch.

    Returns ``(results, mismatches, timing_mismatches, first_mismatch)``; ``options`` are the
    run's stall, seed, build_root and reset_after.
    """
    timing_order = [i % len(bits) for i in range(TIMING_IMAGES)]
    gold = golden.run(model, bits)
    with _Progress(show_progress) as progress:
        expected = {"timing": golden_expected(gold, timing_order),
                    "main": golden_expected(gold, range(len(bits)))}
        results = _simulate(simulator, design, bits, bits[timing_order], expected=expected,
                            vcd=vcd, progress=progress, label="verify",
                            width=model.input.bits, **options)
        layout = OutputLayout.from_sidecar(results.sidecar)
        mismatches = Scoreboard(gold.classes, gold.popcounts, layout, ids).check(
            results.outputs["main"])
        timing_mismatches = Scoreboard(
            gold.classes[timing_order], gold.popcounts[timing_order], layout,
            [ids[i] for i in timing_order]).check(results.outputs["timing"])
        first = None
        if mismatches:
            first = first_mismatch(simulator, design, model, gold, mismatches[0], bits=bits,
                                   ids=ids, timing_order=timing_order,
                                   popcount_width=layout.popcount_width, progress=progress,
                                   **options)
    return results, mismatches, timing_mismatches, first


def _check_options(simulator, stall):
    """The stall as a float, after checking the simulator (name and install) and the stall."""
    from . import tools

    if simulator not in tools.SIMULATORS:
        raise BnnflowError(f"unknown simulator {simulator!r}: choose one of "
                           f"{', '.join(tools.SIMULATORS)}")
    stall = float(stall)
    if not 0.0 <= stall < 1.0:
        raise BnnflowError(f"stall must be a probability in [0, 1), not {stall!r}")
    tools.check_simulator(simulator)
    return stall


def _resolve_design(model, design, hardware_model, folding, fold, ii, pipeline, fault,
                    rom_register, netlist=None):
    """``design``, or the :class:`HwDesign` (or with ``netlist``, the
    :class:`~bnnflow.sim.netlist.NetlistDesign`) of the hardware model and its folding."""
    hw_model = model if hardware_model is None else hardware_model
    if hw_model.widths != model.widths:
        raise BnnflowError(f"hardware_model must have the layer widths of the model "
                           f"{model.widths}, not {hw_model.widths}")
    if design is not None:
        return design
    if folding is None:
        from ..hw.folding import resolve_folding

        try:
            folding = resolve_folding(hw_model, fold, ii)
        except (ValueError, OSError) as e:
            raise BnnflowError(f"bad folding: {e}") from None
    if netlist is not None:
        from .netlist import NetlistDesign

        return NetlistDesign(hw_model, folding, pipeline, netlist, rom_register, fault)
    return HwDesign(hw_model, folding, pipeline, fault, rom_register)


def _resolve_reset_after(reset_after, n):
    """Main-phase images before the mid-stream reset (None: half of the ``n``, at least 1)."""
    if reset_after is None:
        reset_after = max(1, n // 2)
    try:
        stimulus.check_reset_after(reset_after, n)
    except ValueError as e:
        raise BnnflowError(str(e)) from None
    return reset_after
