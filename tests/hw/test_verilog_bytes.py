# amaranth: UnusedElaboratable=no
"""The same inputs give the same Verilog bytes as the reference commit, so that refactoring
(issue 22: layer kinds as a protocol) provably leaves the hardware alone.

``data/verilog_digests.json`` holds the SHA-256 of the Verilog text and of the sidecar JSON
of each design below, generated at the reference commit it names. A change that alters the
hardware on purpose regenerates them (``python tests/hw/test_verilog_bytes.py``) and says why
in its commit message.

The ``ifndef VERILATOR`` / ``initial`` / ``endif`` lines that
:func:`bnnflow.hw.verilog.time_zero_events` adds (issue 20: time
0 in SystemVerilog mode; no hardware, synthesis ignores them) are taken out before hashing,
and checked on their own: one after each of Yosys' time-0 registers.
"""

import hashlib
import json
import sys
from pathlib import Path

import pytest

from bnnflow.hw import verilog
from bnnflow.hw.folding import auto_fold
from bnnflow.model.random_net import random_model

DIGESTS = Path(__file__).parent / "data" / "verilog_digests.json"

#: name -> (widths, folding, pipeline, options of generate())
DESIGNS = {
    "parallel": ([37, 13, 11, 5], None, 0, {}),
    "folded": ([37, 13, 11, 5], "5x8,4x13,2x4", 1, {}),
    "mixed-taps": ([37, 13, 11, 5], "13x5,1x1,5x11", 2, {"debug_taps": True}),
    "chunks-rom-register": ([20, 7, 9, 3], "3x5,2x6,1x3", 1, {"rom_register": True}),
    "single-bit-chunks": ([13, 6, 5], "1x4,1x2", 2, {}),
    "tfc-ii256": ([192, 64, 64, 64, 10], "1x48,1x16,1x16,1x3", 2, {}),
    "auto-fault": ([16, 8, 3], "auto:6", 0, {"fault": ("drop_ready", 1)}),
}


def digests(name):
    widths, fold, pipeline, options = DESIGNS[name]
    model = random_model(widths, seed=1)
    if isinstance(fold, str) and fold.startswith("auto:"):
        fold = auto_fold(model, int(fold[5:]))[0]
    text, sidecar = verilog.generate(model, fold, pipeline, **options)
    lines = text.splitlines(keepends=True)
    events = [i for i, line in enumerate(lines) if line == "`ifndef VERILATOR\n"]
    registers = [line for line in lines
                 if line.lstrip().startswith("reg ") and ":dump_module$" in line]
    assert len(events) == len(registers) > 0
    assert all(lines[i + 1].lstrip().startswith("initial ") and lines[i + 2] == "`endif\n"
               for i in events)
    dropped = {i + d for i in events for d in range(3)}
    text = "".join(line for i, line in enumerate(lines) if i not in dropped)
    sidecar = dict(sidecar, bnnflow_version="-")
    return {"verilog": hashlib.sha256(text.encode()).hexdigest(),
            "sidecar": hashlib.sha256(json.dumps(sidecar, sort_keys=True).encode()).hexdigest()}


@pytest.mark.parametrize("name", list(DESIGNS))
def test_verilog_and_sidecar_bytes_equal_the_reference(name):
    reference = json.loads(DIGESTS.read_text())
    assert digests(name) == reference["designs"][name], (
        f"design {name!r} differs from the reference of commit {reference['commit']}")


if __name__ == "__main__":
    import subprocess

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    DIGESTS.write_text(json.dumps({"commit": commit,
                                   "designs": {n: digests(n) for n in DESIGNS}}, indent=2)
                       + "\n")
    sys.exit(0)
