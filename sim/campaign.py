"""Verification campaigns: many random networks x foldings x pipelines x stall seeds, each
verified against the golden model as a Dask task.

:func:`plan_campaign` makes network ``i`` from ``sizes[i % len(sizes)]`` (a dense or conv
network, :mod:`bnnflow.sim.campaign_nets`; seed ``seed + i``) and its random inputs, and draws
``foldings`` random foldings for it (PE in ``1..N`` and SIMD in ``1..K`` per layer, uniform,
so that padded folds are common; for a ``drop_ready:J`` fault, layer ``J + 1`` slower than
layer ``J`` so that the fault can show); every folding is verified at every pipeline depth and stall
seed. The networks and inputs are written to ``DIR/nets/`` (``net_0007.bnn``,
``net_0007_inputs.npy``) so that each verification can be repeated with ``bnnflow verify``:
:meth:`Check.command` is that command, printed for every mismatch.

:func:`verify_task` runs on a worker (through :func:`bnnflow.dask_pool.run_isolated`): it gets
the model and input bytes and calls :func:`bnnflow.sim.verify.run_verify`, the function behind
``bnnflow verify``. A run's record goes to ``DIR/runs/<key>.json`` (atomically) when it ends,
and a run whose record is there is not run again (``cached: true``); the key hashes the
model checksum, the inputs, the folding, pipeline, stall, seed, simulator, fault and the
bnnflow and Amaranth versions.
"""

import base64
import hashlib
import io
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..dask_pool import cache_key
from ..errors import BnnflowError
from ..fileio import write_bytes_atomic, write_text_atomic
from .campaign_nets import NetSpec, parse_net, random_folding

__all__ = ["CampaignError", "Check", "parse_sizes", "random_folding", "plan_campaign",
           "verify_task", "campaign_key", "run_campaign", "VERIFY_TASK"]

#: Task function for :mod:`bnnflow.dask_pool`.
VERIFY_TASK = "bnnflow.sim.campaign:verify_task"


class CampaignError(BnnflowError):
    """Bad options of ``bnnflow verify-campaign`` (one line, exit status 2)."""


@dataclass(frozen=True)
class Check:
    """One verification of a campaign.

    Parameters
    ----------
    net : int
        Index of the network (``nets/net_<net>.bnn``).
    widths : tuple
        A dense network's widths, or a conv network's ``--sizes`` text alone (so that
        ``"-".join`` writes either).
    folding : str
        ``PExSIMD,...``.
    pipeline : int
    stall : float
    seed : int
        Seed of the stalls.
    """

    net: int
    widths: tuple
    folding: str
    pipeline: int
    stall: float
    seed: int

    @property
    def model_path(self):
        """Path of the network inside the campaign's folder."""
        return Path("nets") / f"net_{self.net:04d}.bnn"

    @property
    def inputs_path(self):
        """Path of the input bits inside the campaign's folder."""
        return Path("nets") / f"net_{self.net:04d}_inputs.npy"

    def command(self, out, simulator, images, fault=None):
        """The ``bnnflow verify`` command that repeats this check (``out``: the campaign's
        folder)."""
        argv = ["bnnflow", "verify", str(Path(out) / self.model_path), "--sim", simulator,
                "--inputs", str(Path(out) / self.inputs_path), "--images", str(images),
                "--fold", self.folding, "--pipeline", str(self.pipeline), "--stall",
                f"{self.stall:g}", "--seed", str(self.seed)]
        if fault is not None:
            argv += ["--fault", fault]
        return shlex.join(argv)


def parse_sizes(text):
    """``"16-8-4,8x8x1:c4k3-p2-5"`` as :class:`~bnnflow.sim.campaign_nets.NetSpec` (dense
    networks as :func:`~bnnflow.model.random_net.parse_widths` reads them, conv networks as
    :func:`~bnnflow.sim.campaign_nets.parse_net` does)."""
    specs = []
    for part in str(text).split(","):
        try:
            specs.append(parse_net(part))
        except ValueError as e:
            if ":" in part:
                raise CampaignError(f"--sizes: {e}") from None
            raise CampaignError(f"--sizes must be networks like 16-8-4 (input width, then each "
                                f"layer's neurons) or 8x8x2:c4k3-p2-d6-3 (a conv network), "
                                f"comma separated, not {text!r}") from None
    return specs


def plan_campaign(out, *, networks, sizes, foldings=1, pipelines=(0,), stall=0.2,
                  stall_seeds=1, images=16, seed=0, slower_after=None, kind=None):
    """Write the networks and inputs into ``out/nets`` and list the checks.

    Parameters
    ----------
    out : Path
    networks : int
        Random networks.
    sizes : list of NetSpec or tuple
        The networks (:func:`parse_sizes`; a tuple is a dense network's widths), used in turn.
    foldings : int
        Random foldings per network.
    pipelines : sequence of int
    stall : float
        Probability of an input gap and of output back-pressure per cycle.
    stall_seeds : int
        Stall seeds ``0..stall_seeds-1`` for every design.
    images : int
        Random input vectors per network.
    seed : int
        Network ``i`` has seed ``seed + i``.
    slower_after : int or None
        Passed to :func:`random_folding` (the layer of a ``drop_ready`` fault).
    kind : dict or None
        ``ternary``, ``act_bits`` and ``input_bits`` of
        :func:`~bnnflow.model.random_net.random_model` (default: W1A1 with input bits); with
        ``input_bits = n`` the inputs are random ``n``-bit values.

    Returns
    -------
    list of (Check, dict)
        Each check and the files of its network: ``{"model", "inputs", "checksum"}``.

    Raises
    ------
    CampaignError
        ``out/nets`` holds other networks or inputs under the same names (a campaign of other
        options), which the records there repeat with.
    """
    from ..model.artifact import save

    plan = []
    for i in range(networks):
        spec = sizes[i % len(sizes)]
        if not isinstance(spec, NetSpec):        # a dense network's widths
            spec = parse_net("-".join(map(str, spec)))
        model = spec.make(seed + i, kind)
        widths = spec.widths or (spec.text,)
        rng = np.random.default_rng([seed, i])
        top = 1 << (kind or {}).get("input_bits", 1)
        bits = rng.integers(0, top, size=(images, spec.input_width), dtype=np.uint8)
        check = Check(i, widths, "", 0, stall, 0)
        files = {"model": Path(out) / check.model_path, "inputs": Path(out) / check.inputs_path}
        buffer = io.BytesIO()
        np.save(buffer, bits)
        tmp = files["model"].with_name(files["model"].name + ".tmp")
        files["checksum"] = save(model, tmp)
        # The records of a folder's earlier runs repeat with these files: another campaign's
        # network must not replace them (the bytes of both are deterministic).
        if any(path.exists() and path.read_bytes() != new for path, new in (
                (files["model"], tmp.read_bytes()), (files["inputs"], buffer.getvalue()))):
            tmp.unlink()
            raise CampaignError(f"{out} holds network {i} of another campaign (other --seed, "
                                f"--sizes, --images, --weights, --act-bits or --input-bits); "
                                f"choose another --out, or repeat that campaign's options")
        os.replace(tmp, files["model"])
        write_bytes_atomic(files["inputs"], buffer.getvalue())
        for _ in range(foldings):
            folding = random_folding(model, rng, slower_after)
            plan += [(Check(i, widths, folding, p, stall, s), files)
                     for p in pipelines for s in range(stall_seeds)]
    return plan


def campaign_key(check, checksum, inputs_bytes, options):
    """Cache key of ``check``: 20 hex digits of the SHA-256 of what decides its result."""
    from importlib.metadata import version

    from .. import __version__

    ident = {"model": checksum, "inputs": hashlib.sha256(inputs_bytes).hexdigest(),
             "folding": check.folding, "pipeline": check.pipeline, "stall": check.stall,
             "seed": check.seed, "bnnflow": __version__, "amaranth": version("amaranth"),
             **options}
    return cache_key(ident)


def verify_task(model_b64, inputs_b64, folding, pipeline, stall, seed, simulator, fault=None):
    """Verify one design on a worker; returns the figures of its report.

    The Verilator and Icarus builds go to the worker's shared cache (``$BNNFLOW_SIM_BUILD``, or
    ``bnnflow-sim-build-<uid>`` in the worker's temporary folder).
    """
    from ..dask_pool import WORKER_TMPDIR
    from ..model import artifact
    from .verify import run_verify

    Path("model.bnn").write_bytes(base64.b64decode(model_b64))
    bits = np.load(io.BytesIO(base64.b64decode(inputs_b64)), allow_pickle=False)
    build_root = os.environ.get("BNNFLOW_SIM_BUILD") or (
        Path(os.environ.get(WORKER_TMPDIR, ".")) / f"bnnflow-sim-build-{os.getuid()}")
    rep = run_verify(artifact.load("model.bnn"), simulator=simulator, fold=folding,
                     pipeline=pipeline, inputs=bits, stall=stall, seed=seed,
                     fault=None if fault is None else tuple(fault), build_root=build_root)
    first = rep.get("first_mismatch")
    return {"passed": bool(rep["passed"]), "mismatches": rep["mismatches"],
            "timing_mismatches": rep["timing_mismatches"], "ii_measured": rep["ii_measured"],
            "ii_expected": rep["ii_expected"], "latency_measured": rep["latency_measured"],
            "latency_expected": rep["latency_expected"], "cycles": rep["cycles"],
            "first_mismatch_layer": first["layer"] if first else None,
            "first_mismatch_image": first["image"] if first else None}


def encode_files(files):
    """``(model_b64, inputs_b64, inputs_bytes)`` of a network's files."""
    model = Path(files["model"]).read_bytes()
    inputs = Path(files["inputs"]).read_bytes()
    return (base64.b64encode(model).decode("ascii"), base64.b64encode(inputs).decode("ascii"),
            inputs)


def write_record(out, key, record):
    """``out/runs/<key>.json``, atomically."""
    write_text_atomic(Path(out) / "runs" / f"{key}.json", json.dumps(record, indent=1) + "\n")


def cached_record(out, key):
    """The stored record of ``key`` (marked ``cached: true``), or ``None``."""
    try:
        record = json.loads((Path(out) / "runs" / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    record["cached"] = True
    return record


def _record(key, check, out, options, outcome):
    record = {"key": key, "net": check.net, "widths": list(check.widths),
              "model": str(Path(out) / check.model_path),
              "inputs": str(Path(out) / check.inputs_path), "folding": check.folding,
              "pipeline": check.pipeline, "stall": check.stall, "seed": check.seed,
              "simulator": options["simulator"], "fault": options["fault"],
              "images": options["images"], "passed": False, "error": None,
              "seconds": outcome.get("seconds"),
              "command": check.command(out, options["simulator"], options["images"],
                                       options["fault"])}
    if outcome["ok"]:
        record.update(outcome["value"])
        record["status"] = "passed" if record["passed"] else "mismatch"
    else:
        record.update(status="timeout" if outcome.get("timeout") else "failed",
                      error=outcome["error"])
    return record


def run_campaign(out, connect, plan, *, simulator, images, fault=None, timeout=None,
                 stream=None):
    """Verify every check of ``plan`` (:func:`plan_campaign`) on Dask; return the records in
    plan order and write ``out/results.json`` (also when interrupted).

    Parameters
    ----------
    out : Path
    connect : callable
        ``connect()`` is a context manager giving the ``distributed.Client``; only called when
        some check is not cached.
    plan : list of (Check, dict)
    simulator : str
    images : int
        Input vectors per network (as planned).
    fault : str or None
        ``drop_ready:J`` or ``swap_output:A,B`` as ``bnnflow verify --fault`` takes it.
    timeout : float or None
        Minutes each verification may take.
    stream : file or None
        Progress lines (default ``sys.stderr``).
    """
    import sys

    from ..dask_pool import Progress, Task, run_tasks, slots

    options = {"simulator": simulator, "fault": fault, "images": images}
    encoded, records, tasks, keys = {}, {}, [], []
    for check, files in plan:
        if check.net not in encoded:
            encoded[check.net] = encode_files(files)
        model_b64, inputs_b64, inputs = encoded[check.net]
        key = campaign_key(check, files["checksum"], inputs, options)
        keys.append(key)
        record = cached_record(out, key)
        if record is not None and record["status"] in ("passed", "mismatch"):
            records[key] = record
            continue
        tasks.append(Task(f"campaign-{key}", VERIFY_TASK, {
            "model_b64": model_b64, "inputs_b64": inputs_b64, "folding": check.folding,
            "pipeline": check.pipeline, "stall": check.stall, "seed": check.seed,
            "simulator": simulator, "fault": _fault_tuple(fault)},
            None if timeout is None else 60 * timeout))
    by_key = {key: check for key, (check, _) in zip(keys, plan, strict=True)}

    def on_done(task, outcome):
        key = task.key.removeprefix("campaign-")
        check = by_key[key]
        record = _record(key, check, out, options, outcome)
        write_record(out, key, record)
        records[key] = {**record, "cached": False}
        what = (f"{record['status']}" + (f": {record['mismatches']} mismatches"
                                         if record["status"] == "mismatch" else "")
                + (f": {record['error'][:160]}" if record["error"] else ""))
        progress.finished(f"net {check.net} {'-'.join(map(str, check.widths))} "
                          f"{check.folding} p{check.pipeline} s{check.seed}: {what}",
                          failed=record["status"] != "passed")

    try:
        if tasks:
            with connect() as client:
                progress = Progress(len(plan), len(records), slots(client), stream)
                print(f"verify-campaign: {len(plan)} checks, {len(records)} cached, "
                      f"{len(tasks)} to run on {progress.slots} workers",
                      file=stream or sys.stderr, flush=True)
                run_tasks(client, tasks, on_done)
    finally:
        ordered = [records[k] for k in keys if k in records]
        write_text_atomic(Path(out) / "results.json", json.dumps(
            {"options": {**options, "timeout_minutes": timeout}, "records": ordered},
            indent=1) + "\n")
    return ordered


def _fault_tuple(fault):
    """``"drop_ready:0"`` as ``["drop_ready", 0]`` (JSON for the task), or ``None``."""
    if fault is None:
        return None
    kind, _, args = fault.partition(":")
    return [kind, *(int(v) for v in args.split(","))]
