"""What a training run writes beside its model: the training curves and the checkpoint.

The checkpoint (:func:`checkpoint_dict`, read back by :mod:`bnnflow.model.checkpoint` for the
weight geometry) holds the configuration and, per layer in network order, its kind, its
real-valued latent weights as a matrix ``(N, K)`` (conv layers: ``(Cout, kh * kw * Cin)`` in
window order), its normalization (:func:`~bnnflow.model.export.bn_params`) and, for conv and
pool layers, the shape parameters their kind's ``preactivation`` takes (``params``). Pool
layers have no weights.
"""

import numpy as np
from torch import nn

from .cnn import BinaryCNN
from .conv import Conv2dLayer
from .dense import DenseLayer
from .export import bn_params
from .layers import BinaryConv2d
from .pool import MaxPool2dLayer

__all__ = ["plot_histories", "checkpoint_dict"]


def plot_histories(path, histories):
    """Loss and accuracy per epoch of each trained network, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6))
    ax_loss, ax_acc = fig.subplots(1, 2)
    for label, h in histories.items():
        epochs = np.arange(1, len(h["loss"]) + 1)
        ax_loss.plot(epochs, h["loss"], label=label)
        ax_acc.plot(epochs, h["train_accuracy"], label=f"{label} train")
        ax_acc.plot(epochs, h["test_accuracy"], "--", label=f"{label} test")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)


def _mlp_layers(net):
    norms = [*net.bns, net.out_norm]
    return [{"name": f"fc{i}", "kind": DenseLayer.kind,
             "latent_weight": fc.weight.detach().clone(),
             "bn": bn_params(norm, fc.out_features)}
            for i, (fc, norm) in enumerate(zip(net.fcs, norms, strict=True))]


def _conv_geometry(block):
    """A conv block's stride and padding as checkpoint params, written only where they are not
    the defaults (stride 1, no padding) so earlier checkpoints keep their form."""
    return {**({"stride": block.stride} if block.stride != 1 else {}),
            **({"pad": block.pad, "pad_fill": block.pad_fill} if block.pad else {})}


def _cnn_layers(net):
    layers, shape = [], net.in_shape
    for i, (block, out) in enumerate(zip(net.blocks, [*net.shapes, None], strict=True)):
        norm = net.norms[str(i)] if str(i) in net.norms else net.out_norm
        if isinstance(block, BinaryConv2d):
            latent = block.window_weight().clone()
            layers.append({"name": f"conv{i}", "kind": Conv2dLayer.kind, "latent_weight": latent,
                           "bn": bn_params(norm, block.out_channels),
                           "params": {"in_shape": list(shape), "kernel": list(block.kernel),
                                      **_conv_geometry(block)}})
        elif isinstance(block, nn.MaxPool2d):
            layers.append({"name": f"pool{i}", "kind": MaxPool2dLayer.kind,
                           "params": {"in_shape": list(shape), "window": int(block.kernel_size),
                                      "stride": int(block.stride)}})
        else:
            layers.append({"name": f"fc{i}", "kind": DenseLayer.kind,
                           "latent_weight": block.weight.detach().clone(),
                           "bn": bn_params(norm, block.out_features)})
        shape = out
    return layers


def checkpoint_dict(config, net, input_encoding):
    """The checkpoint of a trained :class:`~bnnflow.model.nets.BinaryMLP` or
    :class:`~bnnflow.model.cnn.BinaryCNN` (saved with ``torch.save``)."""
    layers = _cnn_layers(net) if isinstance(net, BinaryCNN) else _mlp_layers(net)
    cfg = {"preset": config.preset, **config.topology(), "dataset": config.dataset,
           "data_dir": config.data_dir, "split_seed": config.split_seed,
           "test_fraction": config.test_fraction, "seed": config.seed, "epochs": config.epochs,
           "batch_size": config.batch_size, "lr": config.lr, "dropout": config.dropout,
           "init_scale": config.init_scale, "augment_shift": config.augment_shift,
           "weights": config.weights, "act_bits": config.act_bits,
           "quantizer": config.quantizer, "input_bits": config.input_bits,
           "input_encoding": dict(input_encoding)}
    return {"format": "bnnflow-checkpoint", "version": 1, "config": cfg, "layers": layers,
            "state_dict": net.state_dict()}
