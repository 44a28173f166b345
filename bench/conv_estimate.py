"""Resource estimate of conv networks against Yosys: what the conv rows of the model miss.

Run as ``.venv/bin/python bench/conv_estimate.py [--designs NAME ...] [--jobs 2]``.

For each design (a random conv network of :func:`bnnflow.model.random_net.random_conv_model`,
a target family, a folding) it writes the design as ``bnnflow synth`` does (the synthesis
wrapper, the family's ROM register), runs Yosys' ``synth_<family>`` (no place and route) and
prints the estimates of :mod:`bnnflow.boards.estimate` (LUT4, flip-flops, block RAM: what the
ROMs would need at best and what Yosys is expected to use) beside Yosys' counts;
``bench/conv_estimate.json`` keeps them (where Yosys puts each memory:
``bench/memory_map.py``). A few seconds to a few minutes per design (cnv-mnist's shape on the
ECP5 is the longest).
"""

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent

CNV_MNIST = ((28, 28, 1), [("conv", 16, 3), ("conv", 16, 3), ("pool", 2), ("conv", 32, 3),
                           ("conv", 32, 3), ("pool", 2), ("dense", 128)], 10)
PADDED = ((14, 14, 3), [("conv", 8, 3, 3, 1, 1), ("pool", 2), ("conv", 16, 3, 3, 1, 1, 0),
                        ("pool", 2), ("dense", 32)], 10)
STRIDED = ((15, 15, 2), [("conv", 12, 3, 3, 2), ("conv", 16, 3, 3, 2), ("dense", 24)], 10)

#: name -> (network stages, options of random_conv_model, family, folding).
DESIGNS = {
    "cnv-mnist-ii1024-ecp5": (CNV_MNIST, {}, "ecp5", "auto:1024"),
    "cnv-mnist-ii4096-ecp5": (CNV_MNIST, {}, "ecp5", "auto:4096"),
    "cnv-mnist-ii16384-ecp5": (CNV_MNIST, {}, "ecp5", "auto:16384"),
    "cnv-mnist-ii4096-ice40": (CNV_MNIST, {}, "ice40", "auto:4096"),
    "cnv-mnist-ii16384-ice40": (CNV_MNIST, {}, "ice40", "auto:16384"),
    "padded-ii1024-ecp5": (PADDED, {}, "ecp5", "auto:1024"),
    "padded-ii1024-ice40": (PADDED, {}, "ice40", "auto:1024"),
    "strided-ii512-ecp5": (STRIDED, {}, "ecp5", "auto:512"),
    "strided-ii512-ice40": (STRIDED, {}, "ice40", "auto:512"),
    "padded-a2-ii2048-ecp5": (PADDED, {"act_bits": 2}, "ecp5", "auto:2048"),
    "padded-ternary-ii2048-ice40": (PADDED, {"ternary": True}, "ice40", "auto:2048"),
}


def measure(name):
    """Estimate and synthesize one design: a dict of figures."""
    from bnnflow.boards import estimate
    from bnnflow.boards.estimate import ROM_REGISTER
    from bnnflow.boards.synth import _run_yosys, _write_rtlil
    from bnnflow.boards.tools import find_tool
    from bnnflow.hw.folding import resolve_folding
    from bnnflow.hw.top import BnnTop
    from bnnflow.model.random_net import random_conv_model

    (shape, stages, classes), options, family, fold = DESIGNS[name]
    model = random_conv_model(shape, stages, classes, seed=0, **options)
    folding = (resolve_folding(model, "auto", int(fold[5:])) if fold.startswith("auto:")
               else resolve_folding(model, fold))
    bnn = BnnTop(model, folding, 0, rom_register=ROM_REGISTER[family])
    row = {"design": name, "family": family, "folding": ",".join(map(str, folding)),
           "ii": bnn.ii, "est_lut4": estimate.estimate_luts(model, folding, family),
           "est_ff": estimate.estimate_ffs(model, folding, 0, family),
           "est_bram": estimate.estimate_brams(model, folding, family),
           "est_bram_used": estimate.estimate_brams_used(model, folding, family),
           "est_map_ff": [estimate.map_unit_ffs(layer, unit)
                          + estimate.map_memory_ffs(layer, unit, family)
                          for layer, unit in estimate._map_units(model, folding)]}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.time()
        _write_rtlil(bnn, Path(tmp))
        _, counts = _run_yosys(find_tool("yosys"), family, Path(tmp), None)
        row["yosys_s"] = round(time.time() - t, 1)
    row.update(lut4=counts.lut4, ff=counts.ff, bram=counts.bram, carry=counts.carry,
               lutram=counts.lutram, logic=counts.logic)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", nargs="+", choices=sorted(DESIGNS), default=list(DESIGNS))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    rows = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for row in pool.map(measure, args.designs):
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = HERE / "conv_estimate.json"
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
