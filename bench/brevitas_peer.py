"""Brevitas' own bnn_pynq TFC (FINN's TFC-w1a1 / w1a2 / w2a2) trained with bnnflow's recipe, then
imported exactly (issue 18's peer comparison).

Run as ``.venv/bin/python bench/brevitas_peer.py [--dataset mnist5k] [--seeds 0 1 2] [--configs
1w1a 1w2a 2w2a]``. Each run builds ``brevitas_examples.bnn_pynq.models.FC`` as its ``tfc_*.ini``
says (64-64-64, input of ``IN_BIT_WIDTH``, activations of ``ACT_BIT_WIDTH``, weights of
``WEIGHT_BIT_WIDTH``), trains it with :func:`bnnflow.model.train.train_network` (the recipe of
``bnnflow train``: Adam, cosine schedule, batch 64, the data set's pixel shifts, the epochs of a
beyond-W1A1 run), exports it with ``export_qonnx`` and imports it with ``bnnflow import``. It
prints Brevitas' test accuracy, the imported model's golden accuracy and whether their classes
agree on every test image, and writes ``bench/brevitas_peer.json``.
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
from bnnflow.model.train import train_network
from bnnflow.model.train_config import DEFAULT_SHIFT, default_epochs

#: name -> (weight bits, activation bits, input bits), as Brevitas' cfg/tfc_*.ini; ``1w2a-relu``
#: is the same 64-64-64 with 2-bit ``QuantReLU`` activations (unsigned levels, power-of-two
#: scale) and a binarized input, and ``1w1a-bias`` the 1w1a layout with Brevitas' default
#: ``bias=True`` (float biases) in every ``QuantLinear``: not bnn_pynq configurations.
CONFIGS = {"1w1a": (1, 1, 1), "1w2a": (1, 2, 2), "2w2a": (2, 2, 2), "1w2a-relu": (1, 2, 1),
           "1w1a-bias": (1, 1, 1)}


def _custom_fc(classes, inputs, act_bits, bias=False):
    """bnn_pynq's FC layout (binary weights of scale 1, BatchNorm1d, TensorNorm), ``2x - 1``
    binarized in, 64-64-64 hidden, with ``QuantReLU`` activations of ``act_bits`` (> 1) or
    binary ones, and float biases in every layer with ``bias``."""
    import brevitas.nn as qnn
    from brevitas.core.restrict_val import RestrictValueType
    from brevitas.quant import SignedBinaryActPerTensorConst
    from brevitas_examples.bnn_pynq.models.common import CommonWeightQuant
    from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm
    from torch import nn

    class Center(nn.Module):
        def forward(self, x):
            return 2.0 * x.reshape(x.shape[0], -1) - 1.0

    def act():
        if act_bits == 1:
            return qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
        return qnn.QuantReLU(bit_width=act_bits,
                             restrict_scaling_type=RestrictValueType.POWER_OF_TWO)

    layers = [Center(), qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst)]
    for k, n in ((inputs, 64), (64, 64), (64, 64)):
        layers += [qnn.QuantLinear(k, n, bias=bias, weight_quant=CommonWeightQuant,
                                   weight_bit_width=1), nn.BatchNorm1d(n), act()]
    layers += [qnn.QuantLinear(64, classes, bias=bias, weight_quant=CommonWeightQuant,
                               weight_bit_width=1), TensorNorm()]
    return nn.Sequential(*layers)


def _run(name, dataset, seed, folder):
    import torch  # after bnnflow, which pins the numerics of training
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models.FC import FC

    weight_bits, act_bits, in_bits = CONFIGS[name]
    ds = load_dataset(dataset)
    torch.manual_seed(seed)
    if name.endswith(("-relu", "-bias")):
        net = _custom_fc(len(ds.classes), int(np.prod(ds.shape)), act_bits,
                         bias=name.endswith("-bias"))
    else:
        net = FC(num_classes=len(ds.classes), weight_bit_width=weight_bits,
                 act_bit_width=act_bits, in_bit_width=in_bits, in_channels=1,
                 out_features=[64, 64, 64], in_features=tuple(ds.shape))
    x = torch.from_numpy((ds.x_train.reshape(len(ds.x_train), -1) / ds.scale)
                         .astype(np.float32))
    xt = torch.from_numpy((ds.x_test.reshape(len(ds.x_test), -1) / ds.scale).astype(np.float32))
    epochs = default_epochs("tfc", dataset, beyond_w1a1=not name.startswith("1w1a"))
    start = time.perf_counter()
    train_network(net, x, torch.from_numpy(ds.y_train), xt, torch.from_numpy(ds.y_test),
                  epochs=epochs, batch_size=64, lr=0.01, seed=seed,
                  shift=DEFAULT_SHIFT[dataset], image_shape=ds.shape, background=0.0)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        classes = net.eval()(xt).argmax(dim=1).numpy()
    onnx_path, bnn_path = folder / f"{name}-{seed}.onnx", folder / f"{name}-{seed}.bnn"
    export_qonnx(net, torch.zeros(1, *ds.shape), export_path=str(onnx_path))
    code = bnnflow(["import", str(onnx_path), "--dataset", dataset, "-o", str(bnn_path)])
    model = artifact.load(bnn_path) if code == 0 else None
    golden_classes = golden.run_images(model, ds.x_test).classes if model else None
    return {"config": name, "dataset": dataset, "seed": seed, "epochs": epochs,
            "train_seconds": round(seconds, 1),
            "brevitas_accuracy": float(np.mean(classes == ds.y_test)),
            "imported": code == 0,
            "widths": model.widths if model else None,
            "bias_neurons": model.provenance.get("bias_neurons") if model else None,
            "golden_accuracy": (float(np.mean(golden_classes == ds.y_test))
                                if model else None),
            "equal_classes": int(np.sum(golden_classes == classes)) if model else None,
            "images": len(ds.y_test)}


def main(argv=None):
    import torch  # after bnnflow, which pins the numerics of training

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--out", default=str(Path(__file__).with_name("brevitas_peer.json")))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            for seed in args.seeds:
                run = _run(name, args.dataset, seed, Path(tmp))
                runs.append(run)
                print(f"tfc {name} {args.dataset} seed {seed}: Brevitas "
                      f"{100 * run['brevitas_accuracy']:.1f} %, imported "
                      f"{run['widths']}: golden {100 * (run['golden_accuracy'] or 0):.1f} %, "
                      f"{run['equal_classes']} / {run['images']} equal classes", flush=True)
    write_text_atomic(args.out, json.dumps({"command": " ".join([sys.executable, *sys.argv]),
                                            "runs": runs}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
