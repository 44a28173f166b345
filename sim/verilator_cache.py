"""A cache of Verilator's run-time library objects, shared between design builds.

Every Verilator build compiles the same run-time library (``verilated.o``, ``verilated_vpi.o``,
``verilated_threads.o``, ``verilated_dpi.o``: about 20 s of the 30-45 s a small design takes
here) with flags that depend only on the build options, not on the design. The cocotb runner
runs ``verilator`` and then ``make``; :mod:`bnnflow.sim.cocotb_sim` inserts
``python -m bnnflow.sim.verilator_cache restore CACHE BUILD_DIR`` between them and ``save``
after ``make``.

The key is the SHA-256 of the generated ``Vtop.mk`` (which names the compiler flags and
library paths), the option lines of ``Vtop_classes.mk`` (``VM_TRACE``, ``VM_TIMING``, ...,
the list of global objects; not ``VM_PARALLEL_BUILDS``, which follows the design's size) and
the make-variable overrides. Restored objects get the current
time as their modification time, so ``make`` sees them newer than ``Vtop.mk`` and skips them;
their ``.d`` dependency files come along, so a changed header still rebuilds them.
"""

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

__all__ = ["cache_key", "restore", "save", "main"]

_PREFIX = "Vtop"


def _global_objects(build_dir):
    names, collecting = [], False
    for line in (build_dir / f"{_PREFIX}_classes.mk").read_text().splitlines():
        if line.startswith("VM_GLOBAL_"):
            collecting = True
            continue
        if collecting:
            item = line.strip().rstrip("\\").strip()
            if not line.startswith(" ") or not item:
                collecting = line.startswith(" ")
                continue
            names.append(item)
    return names


def cache_key(build_dir, overrides):
    """Key of the run-time objects a build in ``build_dir`` needs (after ``verilator``)."""
    build_dir = Path(build_dir)
    h = hashlib.sha256()
    # VM_PARALLEL_BUILDS follows the design's size and only affects the design's own files.
    for line in (build_dir / f"{_PREFIX}.mk").read_text().splitlines():
        if not line.startswith("VM_PARALLEL_BUILDS"):
            h.update(line.encode() + b"\n")
    for line in (build_dir / f"{_PREFIX}_classes.mk").read_text().splitlines():
        if (line.startswith("VM_") and "=" in line and "+=" not in line
                and not line.startswith("VM_PARALLEL_BUILDS")):
            h.update(line.encode() + b"\n")
    h.update(" ".join(_global_objects(build_dir)).encode())
    h.update(json.dumps(overrides, sort_keys=True).encode())
    return h.hexdigest()[:20]


def restore(cache_root, build_dir, overrides):
    """Copy cached objects into ``build_dir``; return the number of objects restored."""
    build_dir = Path(build_dir)
    entry = Path(cache_root) / f"verilated-{cache_key(build_dir, overrides)}"
    if not entry.is_dir():
        return 0
    count = 0
    for name in _global_objects(build_dir):
        for suffix in (".d", ".o"):      # .o last: it must be the newest file
            src = entry / f"{name}{suffix}"
            if not src.is_file():
                return count
            shutil.copyfile(src, build_dir / f"{name}{suffix}")
        count += 1
    return count


def save(cache_root, build_dir, overrides):
    """Store the run-time objects of a successful build (once per key)."""
    build_dir = Path(build_dir)
    cache_root = Path(cache_root)
    entry = cache_root / f"verilated-{cache_key(build_dir, overrides)}"
    if entry.is_dir():
        return False
    names = _global_objects(build_dir)
    files = [build_dir / f"{n}{s}" for n in names for s in (".o", ".d")]
    if not names or not all(f.is_file() for f in files):
        return False
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".verilated-", dir=cache_root))
    try:
        for f in files:
            shutil.copyfile(f, tmp / f.name)
        os.replace(tmp, entry)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    return True


def main(argv=None):
    """``python -m bnnflow.sim.verilator_cache restore|save CACHE_ROOT BUILD_DIR OVERRIDES``."""
    argv = sys.argv[1:] if argv is None else argv
    action, cache_root, build_dir, overrides = argv
    overrides = json.loads(overrides)
    try:
        if action == "restore":
            restore(cache_root, build_dir, overrides)
        elif action == "save":
            save(cache_root, build_dir, overrides)
        else:
            raise SystemExit(f"unknown action {action!r}")
    except OSError as e:
        # A cache problem must never fail a build: make simply compiles everything.
        print(f"verilator_cache: {action} skipped ({e})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
