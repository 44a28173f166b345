"""Training and exact export of ternary hidden layers (--weights ternary)."""

import numpy as np
import pytest
import torch
from torch import nn

from bnnflow.cli import main
from bnnflow.errors import BnnflowError
from bnnflow.model import conventions, golden
from bnnflow.model.export import ExportError, fold_batchnorm_live
from bnnflow.model.layers import TernaryLinear, ternary_ste
from bnnflow.model.nets import BinaryMLP
from bnnflow.model.train import TrainConfig, train_and_export


def test_ternary_forward_uses_zeros_signs_and_passes_gradients_through_zeros():
    torch.manual_seed(0)
    fc = TernaryLinear(9, 4)
    t = fc.ternary_weight()
    assert set(t.unique().tolist()) <= {-1.0, 0.0, 1.0} and (t == 0).any()
    x = torch.where(torch.rand(5, 9) < 0.5, 1.0, -1.0)
    assert torch.equal(fc(x), x @ t.T)
    w = fc.weight.detach().clone().requires_grad_(True)
    ternary_ste(w, 0.7).sum().backward()
    assert torch.all(w.grad == 1.0)        # |w| <= 1: every weight, zeros included, learns


@pytest.mark.parametrize("weight", [0.45, -0.45])
@pytest.mark.parametrize("mean", [-3.0, -1.0, 0.0, 2.0])
def test_live_thresholds_equal_the_float_comparison_at_every_live_popcount(weight, mean):
    live = np.array([0, 1, 4, 7, 8])
    bn = nn.BatchNorm1d(len(live)).eval()
    with torch.no_grad():
        bn.weight.fill_(weight)
        bn.bias.copy_(torch.linspace(-0.5, 0.5, len(live)))
        bn.running_mean.fill_(mean)
        bn.running_var.fill_(2.3)
    thresholds, flip = fold_batchnorm_live(bn, live)
    for j, m in enumerate(live):
        p = np.arange(m + 1)
        dots = torch.zeros(m + 1, len(live))
        dots[:, j] = torch.from_numpy(2 * p - m).float()
        with torch.no_grad():
            fires = (bn(dots)[:, j] >= 0).numpy()
        seen = m - p if flip[j] else p
        assert np.array_equal(fires, seen >= thresholds[j]), (j, m)
        assert 0 <= thresholds[j] <= m + 1


def test_fold_live_refuses_another_normalization():
    with pytest.raises(ExportError, match="ternary hidden layers must be followed by "
                                          r"nn.BatchNorm1d \(dense\) or nn.BatchNorm2d \(conv\), "
                                          "not Identity"):
        fold_batchnorm_live(nn.Identity(), np.array([3]))


def test_ternary_training_exports_exactly(tmp_path):
    result = train_and_export(hidden=(24, 16), epochs=2, progress=False, weights="ternary",
                              out=str(tmp_path / "r"))
    assert result.metrics["agreement"] == 1.0
    assert result.metrics["weights"] == "ternary"
    assert 0.0 < result.metrics["zero_weights"] < 1.0
    kinds = [layer.kind for layer in result.model.layers]
    assert kinds == ["ternary_dense", "ternary_dense", "binary_dense"]
    # The exported layers are the trained network's t(W) and BatchNorm, bit for bit.
    net = result.net
    x = torch.where(torch.rand(200, net.widths[0]) < 0.5, 1.0, -1.0)
    bits = conventions.pm1_to_bits(x.numpy())
    net.eval()
    with torch.no_grad():
        want = net(x).argmax(dim=1).numpy()
    assert np.array_equal(golden.classify(result.model, bits), want)


def test_balanced_zero_band_holds_a_third_of_each_neurons_weights(tmp_path):
    fc = TernaryLinear(30, 4, rule="balanced")
    assert np.array_equal((fc.ternary_weight() == 0).sum(dim=1).numpy(), [10] * 4)
    with pytest.raises(ValueError, match="rule must be one of uniform, balanced, not 'odd'"):
        TernaryLinear(30, 4, rule="odd")
    result = train_and_export(hidden=(24, 16), epochs=2, progress=False, weights="ternary",
                              quantizer="balanced", out=str(tmp_path / "r"))
    assert result.metrics["agreement"] == 1.0 and result.metrics["quantizer"] == "balanced"
    zeros = [int((fc.ternary_weight() == 0).sum()) for fc in result.net.fcs[:-1]]
    assert zeros == [24 * 192 // 3, 16 * 24 // 3]    # digits: 64 pixels x 3 thermometer levels
    assert result.metrics["zero_weights"] == round(sum(zeros) / (24 * 192 + 16 * 24), 4)


def test_ternary_is_taken_by_conv_presets_and_unknown_kinds_are_refused():
    assert TrainConfig(preset="cnv-mnist", dataset="mnist5k", weights="ternary").resolved(
        ).weights == "ternary"
    with pytest.raises(BnnflowError, match="--weights must be one of binary, ternary, not 'quad'"):
        TrainConfig(weights="quad").resolved()
    with pytest.raises(ValueError, match="weights must be one of binary, ternary"):
        BinaryMLP(4, (3,), 2, weights="quad")


def test_train_command_takes_weights(tmp_path, capsys):
    assert main(["train", "--hidden", "16", "--epochs", "1", "--weights", "ternary",
                 "--out", str(tmp_path / "t"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "agreement 1.0000" in out and ": 1 epoch in " in out


@pytest.mark.parametrize("options", [{"act_bits": 2}, {"input_bits": 8},
                                     {"act_bits": 2, "input_bits": 8}])
def test_ternary_weights_combine_with_multibit_activations_and_8_bit_inputs(options):
    result = train_and_export(hidden=(24, 16), epochs=2, progress=False, weights="ternary",
                              **options)
    assert result.metrics["agreement"] == 1.0
    first = result.model.layers[0]
    assert first.kind == "ternary_dense" and first.in_bits == options.get("input_bits", 1)
    assert first.activation_bits == options.get("act_bits", 1)
