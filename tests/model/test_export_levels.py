"""Training and exact export of n-bit hidden activations (--act-bits N)."""

import numpy as np
import pytest
import torch
from torch import nn

from bnnflow.errors import BnnflowError
from bnnflow.model import conventions, golden
from bnnflow.model.export import fold_batchnorm
from bnnflow.model.layers import LevelActivation
from bnnflow.model.train import TrainConfig, train_and_export


@pytest.mark.parametrize("bits", [1, 2, 3])
def test_level_activation_gives_odd_levels_at_its_cuts(bits):
    act = LevelActivation(bits)
    top = (1 << bits) - 1
    y = torch.linspace(-2, 2, 401)
    v = act(y)
    assert set(v.unique().tolist()) == set(range(-top, top + 1, 2))
    a = sum((y >= c).long() for c in act.cuts())
    assert torch.equal(v, (2 * a - top).float())
    if bits == 1:
        assert torch.equal(v, torch.where(y >= 0, 1.0, -1.0))
    y.requires_grad_(True)
    act(y).sum().backward()
    assert torch.equal(y.grad, (y.detach().abs() <= 1).float())


def test_level_activation_checks_bits():
    with pytest.raises(ValueError, match="bits must be an integer in 1..8, not 0"):
        LevelActivation(0)


@pytest.mark.parametrize("weight", [0.6, -0.6])
def test_level_thresholds_equal_the_float_comparison(weight):
    bn = nn.BatchNorm1d(1).eval()
    with torch.no_grad():
        bn.weight.fill_(weight)
        bn.bias.fill_(0.1)
        bn.running_mean.fill_(1.0)
        bn.running_var.fill_(4.0)
    count = 3 * 5       # five 2-bit inputs
    dots = torch.arange(-count, count + 1, 2, dtype=torch.float32)[:, None]
    for cut in LevelActivation(2).cuts():
        t, flip = fold_batchnorm(bn, count, cut)
        with torch.no_grad():
            fires = (bn(dots)[:, 0] >= cut).numpy()
        p = np.arange(count + 1)
        assert np.array_equal(fires, (count - p if flip[0] else p) >= t[0])


def test_two_bit_training_exports_exactly():
    result = train_and_export(hidden=(24, 16), epochs=2, progress=False, act_bits=2)
    assert result.metrics["agreement"] == 1.0 and result.metrics["act_bits"] == 2
    model = result.model
    assert [layer.in_bits for layer in model.layers] == [1, 2, 2]
    assert [layer.thresholds.shape[1] for layer in model.layers[:-1]] == [3, 3]
    net = result.net.eval()
    x = torch.where(torch.rand(300, net.widths[0]) < 0.5, 1.0, -1.0)
    with torch.no_grad():
        want = net(x).argmax(dim=1).numpy()
    got = golden.classify(model, conventions.pm1_to_bits(x.numpy()))
    assert np.array_equal(got, want)


def test_act_bits_are_checked():
    with pytest.raises(BnnflowError, match="--act-bits must be an integer in 1..4, not 5"):
        TrainConfig(act_bits=5).resolved()
    assert TrainConfig(preset="cnv-mnist", dataset="mnist5k", act_bits=2).resolved(
        ).act_bits == 2


def test_balanced_cuts_follow_the_quartiles_and_export_exactly():
    act = LevelActivation(2, "balanced")
    y = torch.randn(4000) * 3 + 1
    for _ in range(80):
        act(y)
    want = torch.quantile(y, torch.tensor([0.25, 0.5, 0.75]))
    assert torch.allclose(act.running_cuts, want, atol=1e-3)
    act.eval()
    before = act.running_cuts.clone()
    act(y)
    assert torch.equal(act.running_cuts, before)       # eval leaves the cuts alone
    result = train_and_export(hidden=(24, 16), epochs=2, progress=False, act_bits=2,
                              quantizer="balanced")
    assert result.metrics["agreement"] == 1.0 and result.metrics["quantizer"] == "balanced"
    assert result.net.acts[0].cuts() != LevelActivation(2).cuts()


def test_quantizer_is_checked():
    with pytest.raises(ValueError, match="quantizer must be uniform or balanced, not 'odd'"):
        LevelActivation(2, "odd")
    with pytest.raises(BnnflowError, match="--quantizer balanced places the cuts of multi-bit"):
        TrainConfig(quantizer="balanced").resolved()
