"""The one interface of the simulation back ends: a :class:`SimJob` in, a :class:`SimResult` out.

Every back end is a function ``simulate(design, job, progress=None) -> SimResult``: it generates
the design (``design.component()`` for Amaranth's simulator, ``design.verilog()`` for the
others; see :class:`bnnflow.sim.verify.HwDesign`), builds it if it needs a build (cached), runs
the shared stream bench (:mod:`bnnflow.sim.stimulus`) on it and returns what the bench
recorded. :data:`BACKENDS` maps each simulator name of :data:`bnnflow.sim.tools.SIMULATORS` to
its function; :mod:`bnnflow.sim.verify` looks the simulator up there and scores the result the
same way whichever back end produced it.
"""

import importlib
from dataclasses import dataclass, field

from ..errors import BnnflowError

__all__ = ["TOP_NAME", "SimJob", "SimResult", "NullProgress", "generate", "tap_ports",
           "golden_expected", "BACKENDS"]

#: The top module of generated Verilog (and its sidecar's ``top`` when that is missing).
TOP_NAME = "bnnflow_top"


@dataclass(frozen=True)
class SimJob:
    """What to simulate: the stimulus and the run's options, the same for every back end.

    Parameters
    ----------
    main_inputs, timing_inputs : list of int
        Input payloads of the main and the timing phase (:class:`StreamBench`).
    stall : float
        Probability of an input gap and of back-pressure (:class:`StreamBench`).
    seed : int
    debug_taps : bool
        Generate the design with its per-layer debug taps and record them.
    vcd : path or None
        Write the run's waveform there.
    build_root : path or None
        Where builds are cached (default :func:`bnnflow.sim.build_cache.default_build_root`).
    reset_after : int or None
        The mid-stream reset (:class:`StreamBench`; None: no reset).
    expected : dict or None
        Golden ``{"timing"|"main": {"classes", "popcounts"}}``; the cocotb bench scores its run
        with it (its test's outcome), the other back ends do not need it.
    label : str
        Prefix of the progress display's task descriptions.
    """

    main_inputs: list
    timing_inputs: list
    stall: float = 0.0
    seed: int = 0
    debug_taps: bool = False
    vcd: object = None
    build_root: object = None
    reset_after: int | None = None
    expected: dict | None = None
    label: str = "simulate"


@dataclass
class SimResult:
    """What a back end recorded (the fields of :meth:`StreamBench.to_dict`) and its costs.

    ``outputs``, ``in_edges`` and ``out_edges`` map each phase (``"timing"``, ``"main"``) to the
    output payloads and the edges of the input and output transfers; ``stuck`` maps each phase to
    whether it timed out; ``tap_data`` holds one list of tap values per layer (debug taps only);
    ``latency`` and ``ii`` are measured in the timing phase; ``reset`` is the mid-stream reset's
    ``{"edge", "restart", "in_flight", "input_waiting"}`` (None: not applied) and ``stale`` the
    ``[edge, payload]`` of each stale output. ``loop_seconds`` is the bench's clock loop,
    ``sim_seconds`` the whole simulation and ``build_seconds`` the design's generation and build
    as each back end has always counted them; ``sidecar`` is the generated design's sidecar.
    """

    outputs: dict
    in_edges: dict
    out_edges: dict
    stuck: dict
    tap_data: list
    cycles: int
    latency: int | None
    ii: float | None
    reset: dict | None = None
    stale: list = field(default_factory=list)
    loop_seconds: float = 0.0
    sim_seconds: float = 0.0
    build_seconds: float = 0.0
    sidecar: dict = field(default_factory=dict)

    @classmethod
    def from_bench(cls, data, *, sidecar, loop_seconds, sim_seconds, build_seconds):
        """From :meth:`StreamBench.to_dict` (or the same keys from a results file)."""
        return cls(outputs=data["outputs"], in_edges=data["in_edges"],
                   out_edges=data["out_edges"], stuck=data["stuck"],
                   tap_data=data["tap_data"], cycles=data["cycles"], latency=data["latency"],
                   ii=data["ii"], reset=data.get("reset"), stale=data.get("stale") or [],
                   loop_seconds=float(loop_seconds or 0.0), sim_seconds=sim_seconds,
                   build_seconds=build_seconds, sidecar=sidecar)


class NullProgress:
    """The progress interface the back ends report to, showing nothing.

    A back end calls ``task(description, total)`` once per step and ``update(task,
    completed=n)`` as it goes; :class:`bnnflow.sim.verify` passes a rich display instead.
    """

    def task(self, description, total=None):
        return None

    def update(self, task, **kw):
        pass


def generate(method, debug_taps):
    """``method(debug_taps=...)`` (``design.component`` or ``design.verilog``), with a bad
    design's ``ValueError`` as a :class:`BnnflowError`."""
    try:
        return method(debug_taps=debug_taps)
    except ValueError as e:
        raise BnnflowError(f"cannot generate the design: {e}") from None


def tap_ports(design, debug_taps):
    """``[(valid_port, data_port)]`` of the debug taps to record, in layer order (or none)."""
    if not debug_taps:
        return []
    return [(f"tap_{j}_valid", f"tap_{j}_data") for j in range(len(design.model.layers))]


def golden_expected(result, order):
    """:attr:`SimJob.expected` of one phase: the golden classes and final popcounts of the
    stream items ``order`` of a :func:`bnnflow.model.golden.run` result."""
    return {"classes": [int(result.classes[k]) for k in order],
            "popcounts": [[int(v) for v in result.popcounts[k]] for k in order]}


def _entry(module, function):
    # Imported when first run: the back ends import this module (SimJob, SimResult).
    def simulate(design, job, progress=None):
        run = getattr(importlib.import_module(f"{__package__}.{module}"), function)
        return run(design, job, progress)

    simulate.__qualname__ = simulate.__name__ = f"{module}.{function}"
    return simulate


#: Simulator name -> ``simulate(design, job, progress=None) -> SimResult``.
BACKENDS = {
    "amaranth": _entry("amaranth_sim", "simulate"),
    "verilator": _entry("cocotb_sim", "simulate_verilator"),
    "icarus": _entry("cocotb_sim", "simulate_icarus"),
    "verilator-direct": _entry("direct", "simulate"),
}
