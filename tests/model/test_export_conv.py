"""Exact export of binarized CNNs: golden model == PyTorch eval mode, layer by layer, with
negative, zero and constant BatchNorm2d scales."""

import numpy as np
import pytest
import torch

from bnnflow.model import golden
from bnnflow.model.artifact import Conv2dLayer, DenseLayer, InputSpec, MaxPool2dLayer
from bnnflow.model.cnn import BinaryCNN
from bnnflow.model.export import export_model, fold_batchnorm
from bnnflow.model.stage_spec import conv_geometry, pool_geometry


def hand_set_cnn(in_shape, stages, classes, seed):
    torch.manual_seed(seed)
    net = BinaryCNN(in_shape, stages, classes)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for block in net.blocks:
            if hasattr(block, "weight"):
                block.weight.uniform_(-1, 1, generator=g)
        for bn in net.norms.values():
            n = bn.num_features
            bn.weight.copy_(torch.randn(n, generator=g) * 2)
            bn.bias.copy_(torch.randn(n, generator=g))
            bn.running_mean.copy_(torch.randint(-6, 7, (n,), generator=g).float())
            bn.running_var.copy_(torch.rand(n, generator=g) * 10 + 0.01)
            bn.weight[0::3] = -bn.weight[0::3].abs()           # negative scales
            bn.weight[1] = 0.0                                 # zero scale, bias decides
            if n > 2:
                bn.bias[2] = 1e6                               # constant: always fires
            if n > 3:
                bn.bias[3] = -1e6                              # constant: never fires
            if n > 4:
                bn.bias[4], bn.running_mean[4] = 0.0, 1.0      # output exactly 0 somewhere
        net.out_norm.log_scale.fill_(0.3)
        net.out_norm.running_var.fill_(9.0)
    return net.eval()


def assert_exact(net, x_pm1):
    in_shape = net.in_shape
    model = export_model(net, InputSpec(width=x_pm1.shape[1], shape=in_shape))
    bits = (x_pm1.numpy() > 0).astype(np.uint8)
    g = golden.run(model, bits)
    t = net.trace(x_pm1)
    assert np.array_equal(g.classes, net(x_pm1).argmax(dim=1).numpy())
    assert len(g.activations) == len(t["activations"])
    for got, want in zip(g.activations, t["activations"], strict=True):
        assert np.array_equal(got, (want.numpy() > 0).astype(np.uint8))
    k_last = model.layers[-1].in_width
    assert np.array_equal(g.popcounts, (t["dots"][-1].numpy().astype(np.int64) + k_last) // 2)
    return model


STAGES = [
    ((8, 8, 1), (("conv", 6, 3), ("pool", 2), ("dense", 7)), 4),
    ((9, 7, 3), (("conv", 5, 2), ("conv", 8, 3), ("pool", 2), ("dense", 6)), 3),
    ((10, 10, 2), (("conv", 7, 3), ("pool", 2), ("conv", 9, 2), ("pool", 3)), 5),
    # Strided convs (a rectangular kernel too) and an overlapping pool.
    ((11, 9, 2), (("conv", 6, 3, 3, 2), ("conv", 5, 2), ("pool", 3, 2), ("dense", 6)), 4),
    ((9, 10, 1), (("conv", 5, 3, 2, 3), ("pool", 2, 1), ("dense", 5)), 3),
    # Padding with code 0 (-1) and with code 1 (+1), strided.
    ((7, 6, 2), (("conv", 5, 3, 3, 1, 1), ("conv", 6, 3, 3, 2, 2, 1), ("pool", 2),
                 ("dense", 6)), 3),
]


@pytest.mark.parametrize("in_shape, stages, classes", STAGES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cnn_export_matches_pytorch_with_negative_and_constant_neurons(in_shape, stages,
                                                                       classes, seed):
    net = hand_set_cnn(in_shape, stages, classes, seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.where(torch.rand(300, int(np.prod(in_shape)), generator=g) < 0.5, -1.0, 1.0)
    model = assert_exact(net, x)
    kinds = [type(layer) for layer in model.layers]
    assert kinds.count(Conv2dLayer) == sum(s[0] == "conv" for s in stages)
    assert kinds.count(MaxPool2dLayer) == sum(s[0] == "pool" for s in stages)
    maps = [layer for layer in model.layers if not isinstance(layer, DenseLayer)]
    assert [(layer.kernel, layer.stride, layer.pad, layer.pad_value)
            if isinstance(layer, Conv2dLayer) else
            (layer.window, layer.stride) for layer in maps] == \
        [conv_geometry(s) if s[0] == "conv" else pool_geometry(s) for s in stages
         if s[0] != "dense"]
    conv = model.layers[0]
    k = conv.fan_in
    assert conv.thresholds[2, 0] == 0 and conv.thresholds[3, 0] == k + 1
    # The first conv's weights are the latent signs in (kh, kw, Cin) order, flipped per
    # negative scale.
    latent = (net.blocks[0].weight.detach().permute(0, 2, 3, 1).reshape(conv.neurons, -1)
              >= 0).numpy()
    flip = (net.norms["0"].weight.detach() < 0).numpy()
    assert np.array_equal(conv.weights, np.where(flip[:, None], ~latent, latent))


@pytest.mark.parametrize("k", [9, 27])
@pytest.mark.parametrize("weight", [0.37, -0.37])
@pytest.mark.parametrize("mean", [-3.0, 0.0, 1.0, 4.0])
def test_batchnorm2d_thresholds_equal_the_float_comparison(k, weight, mean):
    bn = torch.nn.BatchNorm2d(1).eval()
    with torch.no_grad():
        bn.weight.fill_(weight)
        bn.bias.fill_(0.0)
        bn.running_mean.fill_(mean)
        bn.running_var.fill_(2.0)
    t, flip = fold_batchnorm(bn, k)
    for p in range(k + 1):
        dot = (k - 2 * p) if flip[0] else (2 * p - k)
        fires = bool(bn(torch.full((1, 1, 3, 3), float(dot)))[0, 0, 1, 1] >= 0)
        assert fires == (p >= t[0])
