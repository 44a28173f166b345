"""Brevitas' own bnn_pynq CNV (FINN's CIFAR-10 network: 32x32x3, 8-bit input) imported exactly,
then run on the hardware model (8-bit inputs and colour images in ``bnnflow import``).

Run as ``.venv/bin/python bench/brevitas_cnv.py [--configs 1w1a 1w2a 2w2a] [--images 200]
[--data-dir DIR] [--verify]``. Each run builds ``brevitas_examples.bnn_pynq.models.CNV`` as its
``cnv_*.ini`` says, untrained (bnn_pynq's uniform weights; BatchNorm statistics from three
batches of random images, so that every channel has its own threshold), exports it with
``export_qonnx`` and imports it with ``bnnflow import --dataset cifar10``, which writes the
model only when the qonnx executor and the golden model agree on every test image. It also
compares the golden classes with Brevitas' own. With ``--verify``, ``bnnflow verify --sim
verilator-direct --stall 0.2 --fold auto --ii 60000`` runs the imported model on the same
images. Without ``--data-dir`` (the CIFAR-10 python batches), the test images are random
pixels in CIFAR-10's file format: exactness and cycle counts do not depend on what the images
show, and an untrained network has no accuracy to report. Writes ``bench/brevitas_cnv.json``.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bnnflow.cli import main as bnnflow
from bnnflow.fileio import write_text_atomic
from bnnflow.model import artifact, golden
from bnnflow.model.data import load_dataset

#: name -> (weight bits, activation bits), as Brevitas' cfg/cnv_*.ini (input: 8 bits).
CONFIGS = {"1w1a": (1, 1), "1w2a": (1, 2), "2w2a": (2, 2)}


def random_cifar(folder, images, seed=0):
    """CIFAR-10 python batches of random pixels (the tests' writer of the real files' Python 2
    pickles): ``images`` test images, 4 per training batch (the import reads the test split)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.model.cifar_files import write_cifar_batches

    write_cifar_batches(folder, n_per_batch=4, n_test=images, seed=seed)
    return folder


def _run(name, data_dir, folder, verify):
    import torch  # after bnnflow, which pins the numerics of training
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models.CNV import CNV

    weight_bits, act_bits = CONFIGS[name]
    torch.manual_seed(0)
    net = CNV(num_classes=10, weight_bit_width=weight_bits, act_bit_width=act_bits,
              in_bit_width=8, in_ch=3)
    with torch.no_grad():
        net.train()
        for _ in range(3):
            net(torch.rand(16, 3, 32, 32))
    net.eval()
    onnx_path, bnn_path = folder / f"cnv_{name}.onnx", folder / f"cnv_{name}.bnn"
    export_qonnx(net, torch.zeros(1, 3, 32, 32), export_path=str(onnx_path))
    start = time.perf_counter()
    code = bnnflow(["import", str(onnx_path), "--dataset", "cifar10", "--data-dir",
                    str(data_dir), "-o", str(bnn_path)])
    import_seconds = time.perf_counter() - start
    run = {"config": name, "imported": code == 0, "import_seconds": round(import_seconds, 1)}
    if code != 0:
        return run
    model = artifact.load(bnn_path)
    ds = load_dataset("cifar10", data_dir=data_dir)
    with torch.no_grad():
        theirs = net(torch.from_numpy(ds.x_test.transpose(0, 3, 1, 2) / 255).float())
    ours = golden.run_images(model, ds.x_test).classes
    run.update(widths=model.widths, layers=len(model.layers), images=len(ours),
               equal_to_brevitas=int(np.sum(ours == theirs.argmax(dim=1).numpy())))
    if verify:
        report = folder / f"verify_{name}.json"
        start = time.perf_counter()
        run["verify_exit"] = bnnflow(["verify", str(bnn_path), "--sim", "verilator-direct",
                                      "--images", "all", "--stall", "0.2", "--fold", "auto",
                                      "--ii", "60000", "--report", str(report)])
        run["verify_seconds"] = round(time.perf_counter() - start, 1)
        if report.exists():
            found = json.loads(report.read_text())
            run["verify"] = {k: found.get(k) for k in (
                "passed", "images", "mismatches", "ii_measured", "ii_expected",
                "latency_measured", "latency_expected", "timing_ok", "folding",
                "build_seconds", "sim_seconds")}
    return run


def main(argv=None):
    import torch  # after bnnflow, which pins the numerics of training

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--images", type=int, default=200,
                        help="random test images when there is no --data-dir (default 200)")
    parser.add_argument("--data-dir", help="the CIFAR-10 python batches (default: random)")
    parser.add_argument("--verify", action="store_true",
                        help="also run verilator-direct on the test images")
    parser.add_argument("--out", default=str(Path(__file__).with_name("brevitas_cnv.json")))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or random_cifar(Path(tmp) / "cifar", args.images)
        for name in args.configs:
            run = _run(name, data_dir, Path(tmp), args.verify)
            runs.append(run)
            print(f"cnv {name}: imported {run['imported']} in {run['import_seconds']} s, "
                  f"{run.get('equal_to_brevitas')} / {run.get('images')} classes equal to "
                  f"Brevitas'; verify {run.get('verify')}", flush=True)
    write_text_atomic(args.out, json.dumps({"command": " ".join([sys.executable, *sys.argv]),
                                            "data": args.data_dir or "random", "runs": runs},
                                           indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
