"""The report of :func:`bnnflow.sim.verify.run_verify`: one dict, JSON-able, and its notes.

:func:`build_report` turns what a run recorded (a :class:`bnnflow.sim.backend.SimResult`), the
scoreboards' mismatches and the run's settings into the report whose keys the module
docstring of :mod:`bnnflow.sim.cli_verify` lists; :func:`write_report` writes it as JSON.
"""

from typing import TypedDict

from ..fileio import write_text_atomic
from ..hw.timing import TIMING_IMAGES
from .scoreboard import OutputLayout

__all__ = ["TIMING_IMAGES", "TIMING_NOTE", "RESET_NOTE", "VerifyReport", "ResetReport",
           "build_report", "reset_report", "write_report"]


RESET_NOTE = ("edge: bench edges counted from 0 at the first edge after the initial reset, "
              "timing phase included (as cycles); rst was high at that edge; images sent "
              "again from restart_image; stale outputs: transfers after the reset sooner than "
              "the sidecar latency after their image's new input transfer (a conv network: "
              "after the last pixel its output depends on), each a mismatch")

TIMING_NOTE = (f"measured in a stall-free timing phase right after reset: {TIMING_IMAGES} "
               "images (the first stimulus images, repeated if fewer) fed back to back with "
               "o.ready held high; latency = edges from the first image's (last) input transfer "
               "(a conv network's last pixel) to the first output transfer, negative when a "
               "max-pool drops the map's last rows and the output leaves before they are sent; "
               "II = mean spacing of output transfers over the second half of the phase")

CYCLES_PER_SECOND_NOTE = ("cycles (both phases) / wall time of the bench's clock loop "
                          "(simulator start-up, elaboration and builds excluded; "
                          "sim_seconds includes start-up)")


class ResetReport(TypedDict):
    """The report's ``reset_mid_stream`` entry (:func:`reset_report`)."""

    after: int
    applied: bool
    edge: int | None
    images_in_flight: int | None
    input_waiting: bool | None
    restart_image: int | None
    stale_outputs: int
    stale: list
    min_latency: int
    note: str


class VerifyReport(TypedDict):
    """The report of one verification, as :func:`build_report` makes it and ``--report``
    writes it (JSON); the module docstring of :mod:`bnnflow.sim.cli_verify` says what each key
    means."""

    simulator: str
    model_checksum: str | None
    source: str
    images: int
    stall: float
    seed: int
    folding: list
    pipeline: int
    rom_register: bool
    target: str | None
    netlist: str | None
    fault: list | None
    hardware_model_differs: bool
    mismatches: int
    timing_mismatches: int
    missing_outputs: int
    stuck: dict
    first_mismatch: dict | None
    cycles: int
    ii_measured: float | None
    ii_expected: int
    latency_measured: int | None
    latency_expected: int
    timing_ok: bool
    timing_note: str
    build_seconds: float
    sim_seconds: float
    wall_seconds: float
    loop_seconds: float
    cycles_per_second: float | None
    cycles_per_second_note: str
    vcd: str | None
    reset_mid_stream: ResetReport | None
    passed: bool


def build_report(settings, results, mismatches, timing_mismatches, first,
                 wall_seconds) -> VerifyReport:
    """The report dict of one verification.

    Parameters
    ----------
    settings : dict
        ``simulator``, ``source``, ``images``, ``stall``, ``seed``, ``pipeline`` (used when the
        sidecar has none), ``target``, ``fault``, ``hardware_model_differs``, ``vcd``,
        ``reset_after`` (None: no mid-stream reset), ``ids`` (image id per stream item) and
        ``netlist`` (the family whose Yosys netlist was simulated, or None: the RTL).
    results : SimResult
        The main run.
    mismatches, timing_mismatches : list of Mismatch
        Of the main and the timing phase.
    first : dict or None
        The first mismatch with the layer that differs first (the diagnosis).
    wall_seconds : float
        Wall time of the whole verification.
    """
    sidecar = results.sidecar
    reset_rep, stale = None, []
    if settings["reset_after"] is not None:
        reset_rep, stale = reset_report(results, settings["reset_after"], settings["ids"])
    latency, ii_measured = results.latency, results.ii
    timing_ok = latency == sidecar["latency"] and ii_measured == sidecar["ii"]
    cycles = int(results.cycles)
    loop = results.loop_seconds
    layers = sidecar.get("layers", [])
    fault, vcd = settings["fault"], settings["vcd"]
    rep: VerifyReport = {
        "simulator": settings["simulator"],
        "model_checksum": sidecar.get("model_checksum"),
        "source": settings["source"],
        "images": settings["images"],
        "stall": settings["stall"],
        "seed": int(settings["seed"]),
        "folding": [[layer["pe"], layer["simd"]] for layer in layers],
        "pipeline": sidecar.get("pipeline", settings["pipeline"]),
        "rom_register": any(layer.get("rom_register") for layer in layers),
        "target": settings["target"],
        "netlist": settings.get("netlist"),
        "fault": list(fault) if fault is not None else None,
        "hardware_model_differs": settings["hardware_model_differs"],
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
        "wall_seconds": round(wall_seconds, 3),
        "loop_seconds": round(loop, 3),
        "cycles_per_second": round(cycles / loop, 1) if loop > 0 else None,
        "cycles_per_second_note": CYCLES_PER_SECOND_NOTE,
        "vcd": str(vcd) if vcd is not None else None,
        "reset_mid_stream": reset_rep,
        "passed": False,
    }
    rep["passed"] = (not mismatches and not timing_mismatches and timing_ok and not stale
                     and (reset_rep is None or reset_rep["applied"]))
    return rep


def reset_report(results, reset_after, ids):
    """The report's ``reset_mid_stream`` entry, and the stale outputs."""
    info = results.reset
    stale = results.stale
    layout = OutputLayout.from_sidecar(results.sidecar)
    pixels = (results.sidecar.get("input_layout") or {}).get("kind") == "pixels"
    entry: ResetReport = {
        "after": reset_after, "applied": info is not None, "edge": None,
        "images_in_flight": None, "input_waiting": None, "restart_image": None,
        "stale_outputs": len(stale), "stale": [],
        "min_latency": 1 if pixels else int(results.sidecar["latency"]), "note": RESET_NOTE}
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
