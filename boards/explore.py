"""Design-space exploration: foldings x targets x pipelines x placer seeds, one synthesis each.

:func:`plan_runs` lists the runs of a sweep: for every target, the ``auto`` folding at each
requested II (resolved here, so that the run is named by the folding it builds) and the ``fit``
folding (:func:`bnnflow.boards.fit.fit_by_placement`, decided by placing), each at every
popcount pipeline depth and nextpnr placer seed. Two IIs whose ``auto`` foldings are the same
design are one run.

Each run has a key (:func:`run_key`): the SHA-256 of the model checksum, the target, the
folding asked for, the pipeline, the seed, the clock constraint and the versions of the tools
(:func:`tool_versions`: bnnflow, Amaranth, Yosys, nextpnr). :class:`Sweep` keeps one record per
run in ``DIR/runs/<key>.json``, each written atomically when its run ends; a run whose record
is there is not run again (its record comes back with ``cached: true``), so an interrupted
sweep continues where it stopped. ``DIR/results.json`` is assembled from those files, in plan
order, whenever the sweep stops.

Record keys: ``key``, ``model_checksum``, ``target``, ``fold`` (``auto`` or ``fit``),
``ii_requested``, ``folding``, ``ii``, ``pipeline``, ``seed``, ``nextpnr_seed``, ``status``
(``placed``, ``not_placed``: the tools found it too big, ``failed``: an error, ``timeout``),
``placed``, ``lut4``, ``ff``, ``bram``, ``logic_cells``, ``fmax_mhz``, ``images_per_second``,
``latency``, ``latency_us``, ``timing_met``, ``seconds`` (the run's wall time), ``error`` (one
line or null), ``attempts`` (``fit`` only), ``tools``, ``options``, ``cached``.

:func:`synth_task` is the task a Dask worker runs (through
:func:`bnnflow.dask_pool.run_isolated`): it gets the model's bytes, so workers need no shared
file system.
"""

import base64
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..dask_pool import cache_key
from ..errors import BnnflowError
from ..fileio import write_text_atomic
from .targets import get_target

__all__ = ["ExploreError", "Run", "parse_int_list", "parse_targets", "tool_versions",
           "plan_runs", "run_key", "synth_task", "Sweep", "RESULT_FIELDS", "explore",
           "outcome_text", "best_text", "RETRY"]

#: What a placed run reports, copied from the synthesis report.
RESULT_FIELDS = ("folding", "ii", "lut4", "ff", "bram", "logic_cells", "fmax_mhz",
                 "images_per_second", "latency", "latency_us", "timing_met", "nextpnr_seed")

#: Task function for :mod:`bnnflow.dask_pool`.
SYNTH_TASK = "bnnflow.boards.explore:synth_task"


class ExploreError(BnnflowError):
    """Bad options of ``bnnflow explore`` (one line, exit status 2)."""


@dataclass(frozen=True)
class Run:
    """One synthesis run of a sweep.

    Parameters
    ----------
    target : str
    fold : {"auto", "fit"}
    ii_requested : int or None
        The II asked of ``auto`` (``None`` for ``fit``).
    folding : str or None
        ``PExSIMD,...`` of the ``auto`` folding (``None`` for ``fit``: decided by placing).
    pipeline : int
    seed : int
        First nextpnr placer seed.
    """

    target: str
    fold: str
    ii_requested: int | None
    folding: str | None
    pipeline: int
    seed: int

    @property
    def label(self):
        """Short text naming the run, e.g. ``ice40-up5k auto II 64 (8x24,...) p2 s1``."""
        what = (f"auto II {self.ii_requested} ({self.folding})" if self.fold == "auto"
                else "fit")
        return f"{self.target} {what} p{self.pipeline} s{self.seed}"


def parse_int_list(text, option, minimum=0):
    """``"1,4,16"`` as ``[1, 4, 16]``; :class:`ExploreError` naming ``option`` otherwise."""
    values = []
    for part in str(text).split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < minimum:
            raise ExploreError(f"{option} must be a comma-separated list of integers >= "
                               f"{minimum}, like 1,4,16, not {text!r}")
        values.append(int(part))
    return sorted(set(values), key=values.index)


def parse_targets(text):
    """``"ecp5-85k,ice40-up5k"`` as a list of known target names."""
    from .targets import TARGETS

    names = [n.strip() for n in str(text).split(",") if n.strip()]
    unknown = [n for n in names if n not in TARGETS]
    if unknown or not names:
        raise ExploreError(f"--targets must name targets among {', '.join(TARGETS)}, not "
                           f"{text!r}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    return sorted(set(names), key=names.index)


def _package_version(name):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def tool_versions(families):
    """Versions of what makes the hardware: bnnflow, Amaranth, Yosys and the nextpnr of each
    family (the YoWASP package's version, or for a tool named by its environment variable its
    ``--version`` line)."""
    import subprocess

    from .. import __version__
    from .tools import TOOLS, find_tool

    versions = {"bnnflow": __version__, "amaranth": _package_version("amaranth")}
    for name in ["yosys", *(f"nextpnr-{f}" for f in sorted(set(families)))]:
        command = find_tool(name)
        if Path(command[0]).name == TOOLS[name].yowasp:
            versions[name] = _package_version(TOOLS[name].package)
            continue
        try:
            out = subprocess.run([*command, "--version"], capture_output=True, text=True,
                                 timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        versions[name] = " ".join(command) + ": " + (out.strip().splitlines() or ["?"])[0]
    return versions


def tools_of(tools, family):
    """The part of :func:`tool_versions` ``tools`` that builds for one FPGA ``family``: a
    run's key and record name only these, so that the other targets of a sweep do not change
    them."""
    return {name: v for name, v in tools.items()
            if not name.startswith("nextpnr-") or name == f"nextpnr-{family}"}


def plan_runs(model, targets, iis, pipelines, seeds, *, fit=True):
    """The runs of a sweep, in order, and notes on IIs merged or impossible.

    Parameters
    ----------
    model : BnnModel
    targets : list of str
    iis : list of int
        Target IIs of the ``auto`` folding.
    pipelines : list of int
    seeds : list of int
        nextpnr placer seeds.
    fit : bool
        Also the ``fit`` folding of each target.

    Returns
    -------
    (runs, notes) : list of Run, list of str
    """
    from ..hw.folding import auto_fold

    foldings, notes, seen = [], [], {}
    for ii in iis:
        try:
            folds, achieved = auto_fold(model, ii)
        except ValueError as e:
            notes.append(f"II {ii} skipped: {e}")
            continue
        text = ",".join(str(f) for f in folds)
        if text in seen:
            notes.append(f"II {ii} gives the folding of II {seen[text]} ({text}, II "
                         f"{achieved}): run once")
            continue
        seen[text] = ii
        foldings.append(("auto", ii, text))
    if fit:
        foldings.append(("fit", None, None))
    runs = [Run(target, fold, ii, text, pipeline, seed)
            for target in targets for fold, ii, text in foldings
            for pipeline in pipelines for seed in seeds]
    return runs, notes


def run_key(checksum, run, options, tools):
    """The cache key of ``run``: 20 hex digits of the SHA-256 of what decides its result."""
    ident = {"model": checksum, "target": run.target, "fold": run.fold,
             "folding": run.folding, "pipeline": run.pipeline, "seed": run.seed,
             "freq_mhz": options.get("freq_mhz"), "tools": tools}
    return cache_key(ident)


def synth_task(model_b64, target, fold, pipeline, seed, freq_mhz=None, pnr_timeout=None):
    """Synthesize one run on a worker; returns ``{"status", "error", RESULT_FIELDS...}``.

    ``fold`` is ``"fit"`` or a ``PExSIMD,...`` folding. A design the tools find too big
    (:class:`~bnnflow.boards.fit.DoesNotFit`) is a result with status ``not_placed``, not an
    error; other errors propagate (the task then fails with their message).
    """
    from ..model import artifact
    from .fit import DoesNotFit
    from .synth import synthesize

    path = Path(tempfile.mkdtemp(prefix="model-", dir=os.getcwd())) / "model.bnn"
    path.write_bytes(base64.b64decode(model_b64))
    model = artifact.load(path)
    try:
        report = synthesize(model, target, fold, pipeline=pipeline, seed=seed,
                            freq_mhz=freq_mhz, pnr_timeout=pnr_timeout)
    except DoesNotFit as e:
        return {"status": "not_placed", "error": " ".join(str(e).split())}
    result = {name: report.get(name) for name in RESULT_FIELDS}
    result.update(status="placed", error=None)
    if "attempts" in report:
        result["attempts"] = [{k: a[k] for k in ("folding", "ii", "placed")}
                              for a in report["attempts"]]
    return result


class Sweep:
    """The records of one output folder: cached runs, new records, ``results.json``.

    Parameters
    ----------
    out : Path
        The sweep's folder (``runs/`` holds one record per run).
    common : dict
        Fields every record carries (``model_checksum``, ``tools``, ``options``).
    """

    def __init__(self, out, common):
        self.out = Path(out)
        self.runs_dir = self.out / "runs"
        self.common = common

    def cached(self, key):
        """The stored record of ``key`` (marked ``cached: true``), or ``None``."""
        try:
            record = json.loads((self.runs_dir / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("key") != key:
            return None
        record["cached"] = True
        return record

    def record(self, key, run, outcome):
        """The record of ``run`` from its task ``outcome`` (:func:`run_isolated`), written
        atomically to ``runs/<key>.json``; returned with ``cached: false``."""
        record = {"key": key, "model_checksum": self.common["model_checksum"],
                  "target": run.target, "fold": run.fold, "ii_requested": run.ii_requested,
                  "folding": run.folding, "ii": None, "pipeline": run.pipeline,
                  "seed": run.seed, **{name: None for name in RESULT_FIELDS[1:]}}
        if outcome["ok"]:
            record.update(outcome["value"])
            if record["folding"] is None:
                record["folding"] = run.folding
        else:
            record.update(status="timeout" if outcome.get("timeout") else "failed",
                          error=outcome["error"])
        record.update(placed=record["status"] == "placed", seconds=outcome.get("seconds"),
                      tools=tools_of(self.common["tools"], get_target(run.target).family),
                      options=self.common["options"])
        write_text_atomic(self.runs_dir / f"{key}.json", json.dumps(record, indent=1) + "\n")
        record["cached"] = False
        return record

    def write_results(self, records, header):
        """``results.json``: ``header`` (model, options, tools) and the records in order."""
        data = {**header, "records": records}
        write_text_atomic(self.out / "results.json", json.dumps(data, indent=1) + "\n")


def _fmt_ips(ips):
    if ips is None:
        return "-"
    return f"{ips / 1e6:.3g} M" if ips >= 1e6 else f"{ips / 1e3:.3g} k"


def outcome_text(record):
    """One line on a finished run: ``placed, 1234 LUT4, 120.3 MHz, 1.2 M images/s (45 s)``."""
    secs = f" ({record['seconds']:.0f} s)" if record.get("seconds") is not None else ""
    if record["status"] == "placed":
        return (f"placed {record['folding']} II {record['ii']}, {record['lut4']} LUT4, "
                f"{record['fmax_mhz']:.1f} MHz, {_fmt_ips(record['images_per_second'])} "
                f"images/s{secs}")
    return f"{record['status']}{secs}: {(record['error'] or '')[:160]}"


def best_text(records):
    """The placed record with the most images per second, as text (``None`` if none)."""
    placed = [r for r in records if r["placed"] and r["images_per_second"]]
    if not placed:
        return None
    b = max(placed, key=lambda r: (r["images_per_second"], -r["lut4"]))
    return (f"{b['target']} {b['folding']} p{b['pipeline']}: "
            f"{_fmt_ips(b['images_per_second'])} images/s, {b['lut4']} LUT4")


def explore(model_path, out, connect, *, targets, iis, pipelines, seeds, timeout=None,
            freq_mhz=None, fit=True, retry_failed=False, stream=None):
    """Run (or continue) a sweep; return ``(header, records)`` in plan order.

    Parameters
    ----------
    model_path : path
        The ``.bnn`` model (its bytes go to the workers).
    out : Path
        The sweep's folder: ``runs/``, ``results.json`` (written even when interrupted).
    connect : callable
        ``connect()`` is a context manager giving the :class:`distributed.Client` (e.g.
        :func:`bnnflow.dask_pool.open_client`); only called when some run is not cached.
    targets, iis, pipelines, seeds : lists
        As :func:`plan_runs`.
    timeout : float or None
        Minutes each run may take (``None``: no limit).
    freq_mhz : float or None
        Clock constraint (default: each target's).
    fit : bool
        Also the ``fit`` folding of each target.
    retry_failed : bool
        Run again the cached runs that failed or timed out.
    stream : file or None
        Progress lines (default ``sys.stderr``).
    """
    from ..dask_pool import Progress, Task, run_tasks, slots
    from ..model import artifact

    model = artifact.load(model_path)
    checksum = artifact.model_checksum(model.manifest()[0])
    tools = tool_versions(get_target(t).family for t in targets)
    options = {"freq_mhz": freq_mhz, "timeout_minutes": timeout}
    header = {"model": str(model_path), "model_checksum": checksum, "tools": tools,
              "options": {**options, "targets": targets, "ii": iis, "pipeline": pipelines,
                          "seeds": seeds, "fit": fit}}
    runs, notes = plan_runs(model, targets, iis, pipelines, seeds, fit=fit)
    for note in notes:
        print(f"note: {note}", file=stream or sys.stderr, flush=True)
    sweep = Sweep(out, {"model_checksum": checksum, "tools": tools, "options": options})
    keys = [run_key(checksum, run, options, tools_of(tools, get_target(run.target).family))
            for run in runs]
    model_b64 = base64.b64encode(Path(model_path).read_bytes()).decode("ascii")
    records, tasks = {}, []
    for run, key in zip(runs, keys, strict=True):
        record = sweep.cached(key)
        if record is not None and not (retry_failed and record["status"] in RETRY):
            records[key] = record
            continue
        tasks.append(Task(f"explore-{key}", SYNTH_TASK, {
            "model_b64": model_b64, "target": run.target,
            "fold": run.folding if run.fold == "auto" else "fit", "pipeline": run.pipeline,
            "seed": run.seed, "freq_mhz": freq_mhz,
            "pnr_timeout": None if timeout is None else 60 * timeout},
            None if timeout is None else 60 * timeout))
    by_key = dict(zip(keys, runs, strict=True))

    def on_done(task, outcome):
        key = task.key.removeprefix("explore-")
        record = sweep.record(key, by_key[key], outcome)
        records[key] = record
        progress.finished(f"{by_key[key].label}: {outcome_text(record)}",
                          failed=record["status"] in RETRY, best=best_text(records.values()))

    try:
        if tasks:
            with connect() as client:
                progress = Progress(len(runs), len(records), slots(client), stream)
                print(f"explore: {len(runs)} runs, {len(records)} cached, {len(tasks)} to run "
                      f"on {progress.slots} workers", file=stream or sys.stderr, flush=True)
                run_tasks(client, tasks, on_done)
    finally:
        ordered = [records[k] for k in keys if k in records]
        sweep.write_results(ordered, header)
    return header, ordered


#: Statuses that ``retry_failed`` runs again (and that count as failed in the progress).
RETRY = ("failed", "timeout")
