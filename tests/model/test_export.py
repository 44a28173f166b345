import numpy as np
import pytest
import torch
from torch import nn

from bnnflow.model import artifact, golden
from bnnflow.model.artifact import InputSpec
from bnnflow.model.export import ExportError, check_output_norm, export_model, fold_batchnorm
from bnnflow.model.nets import BinaryMLP


def random_pm1(rows, width, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.where(torch.rand(rows, width, generator=g) < 0.5, -1.0, 1.0)


def hand_set_net(widths, seed):
    """A net whose BatchNorms have negative, zero and huge scales and always/never-firing
    biases, set by hand."""
    torch.manual_seed(seed)
    net = BinaryMLP(widths[0], widths[1:-1], widths[-1])
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for fc in net.fcs:
            fc.weight.uniform_(-1, 1, generator=g)
        for bn, k in zip(net.bns, widths[:-2], strict=True):
            n = bn.num_features
            bn.weight.copy_(torch.randn(n, generator=g) * 2)
            bn.bias.copy_(torch.randn(n, generator=g))
            bn.running_mean.copy_(torch.randint(-k, k + 1, (n,), generator=g).float())
            bn.running_var.copy_(torch.rand(n, generator=g) * 10 + 0.01)
            bn.weight[0::5] = -bn.weight[0::5].abs()           # negative scales
            bn.weight[1] = 0.0                                 # zero scale, bias decides
            bn.bias[1] = 0.25
            if n > 2:
                bn.weight[2], bn.bias[2] = -0.0, -0.5          # negative zero, never fires
            if n > 3:
                bn.bias[3] = 1e6                               # constant: always fires
            if n > 4:
                bn.bias[4] = -1e6                              # constant: never fires
            if n > 6:
                bn.bias[6] = 0.0                               # output exactly 0 at p = ...
                bn.running_mean[6] = float(k % 2)              # ... a reachable dot value
        net.out_norm.log_scale.fill_(0.7)
        net.out_norm.running_mean.fill_(3.0)
        net.out_norm.running_var.fill_(17.0)
    return net.eval()


def assert_exact(net, x_pm1):
    """Golden model on the export == PyTorch eval mode: classes, activations, popcounts."""
    k0 = x_pm1.shape[1]
    model = export_model(net, InputSpec(width=k0, shape=(k0,)))
    bits = (x_pm1.numpy() > 0).astype(np.uint8)
    g = golden.run(model, bits)
    t = net.eval().trace(x_pm1)
    assert np.array_equal(g.classes, net(x_pm1).argmax(dim=1).numpy())
    assert len(g.activations) == len(t["activations"])
    for layer, got, want, dot in zip(model.layers, g.activations, t["activations"],
                                     t["dots"], strict=False):
        assert np.array_equal(got, (want.numpy() > 0).astype(np.uint8))
        k = layer.in_width
        flipped = layer.weights != (net.fcs[int(layer.name[2:])].weight.detach() >= 0).numpy()
        flip = flipped.all(axis=1)
        assert np.array_equal(flip, flipped.any(axis=1))  # whole rows flip or none
        p = (dot.numpy().astype(np.int64) + k) // 2
        assert np.array_equal(g.layer_popcounts[int(layer.name[2:])],
                              np.where(flip[None, :], k - p, p))
    k_last = model.layers[-1].in_width
    assert np.array_equal(g.popcounts, (t["dots"][-1].numpy().astype(np.int64) + k_last) // 2)
    return model, g


@pytest.mark.parametrize("widths", [[16, 12, 10, 4], [9, 8, 3], [40, 31, 17, 10]])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_export_matches_pytorch_with_negative_and_constant_neurons(widths, seed):
    net = hand_set_net(widths, seed)
    x = random_pm1(400, widths[0], seed)
    model, _ = assert_exact(net, x)
    t = model.layers[0].thresholds[:, 0]
    k = widths[0]
    assert t[3] == 0 and t[4] == k + 1
    assert t[2] == k + 1  # weight -0.0 (not negative): BN is the constant -0.5


def test_export_matches_pytorch_on_every_input_of_a_small_net():
    net = hand_set_net([10, 8, 6, 3], 5)
    every = torch.tensor([[1.0 if (i >> b) & 1 else -1.0 for b in range(10)]
                          for i in range(2 ** 10)])
    assert_exact(net, every)


@pytest.mark.parametrize("k", [6, 8, 64])
@pytest.mark.parametrize("weight", [0.37, -0.37, 3.0, -1e-3])
def test_threshold_when_batchnorm_output_is_exactly_zero_at_a_popcount(k, weight):
    # mean = 0, bias = 0: BN(dot) = dot * alpha is exactly +-0 at dot = 0, i.e. p = K / 2,
    # and sign(0) = +1 makes that popcount fire.
    bn = nn.BatchNorm1d(1).eval()
    with torch.no_grad():
        bn.weight.fill_(weight)
        bn.bias.fill_(0.0)
        bn.running_mean.fill_(0.0)
        bn.running_var.fill_(2.3)
    with torch.no_grad():
        assert float(bn(torch.zeros(1, 1))[0, 0]) == 0.0
    thresholds, flip = fold_batchnorm(bn, k)
    # weight > 0: fires for dot >= 0, p >= K/2; weight < 0: fires for dot <= 0, i.e. the
    # flipped popcount p' = K - p >= K/2.
    assert flip[0] == (weight < 0)
    assert thresholds[0] == k // 2


@pytest.mark.parametrize("k", [7, 8])
@pytest.mark.parametrize("weight", [0.37, -0.37])
@pytest.mark.parametrize("mean", [-3.0, -2.0, 0.0, 1.0, 2.0, 4.0])
def test_thresholds_equal_the_float_comparison_at_every_popcount(k, weight, mean):
    # mean on or next to a reachable dot value puts the BN output at or near 0 there.
    bn = nn.BatchNorm1d(1).eval()
    with torch.no_grad():
        bn.weight.fill_(weight)
        bn.bias.fill_(0.0)
        bn.running_mean.fill_(mean)
        bn.running_var.fill_(2.3)
    thresholds, flip = fold_batchnorm(bn, k)
    dots = torch.arange(-k, k + 1, 2, dtype=torch.float32)[:, None]  # p = 0..K
    with torch.no_grad():
        fires = (bn(dots)[:, 0] >= 0).numpy()
    p = np.arange(k + 1)
    p_seen = k - p if flip[0] else p  # the popcount the hardware sees
    assert np.array_equal(fires, p_seen >= thresholds[0])
    assert 0 < thresholds[0] <= k  # never constant here: the sign changes inside -K..K


@pytest.mark.parametrize("bias, expected", [(5.0, 0), (-5.0, "never")])
def test_constant_neurons_clamp_to_zero_or_k_plus_one(bias, expected):
    k = 6
    bn = nn.BatchNorm1d(2).eval()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.0, 0.01]))
        bn.bias.fill_(bias)
    thresholds, _ = fold_batchnorm(bn, k)
    want = 0 if expected == 0 else k + 1
    assert np.array_equal(thresholds, [want, want])


def test_export_refuses_per_class_output_batchnorm():
    net = BinaryMLP(8, (6,), 3)
    net.out_norm = nn.BatchNorm1d(3)
    with pytest.raises(ExportError, match="output layer's normalization must be OutputNorm"):
        export_model(net, InputSpec(width=8, shape=(8,)))


def test_export_refuses_output_norm_that_collapses_scores():
    net = BinaryMLP(8, (6,), 3)
    with torch.no_grad():
        net.out_norm.log_scale.fill_(-200.0)  # exp underflows to 0: every score ties
    with pytest.raises(ExportError, match="maps distinct popcounts to equal or decreasing"):
        check_output_norm(net.out_norm, 6)
    with pytest.raises(ExportError):
        export_model(net, InputSpec(width=8, shape=(8,)))


def test_export_refuses_non_monotone_batchnorm():
    bn = nn.BatchNorm1d(1).eval()
    with torch.no_grad():
        bn.running_var.fill_(float("nan"))
        bn.bias.fill_(0.0)
    # NaN outputs never reach 0, so the neuron is constant; infinities are also constant.
    thresholds, _ = fold_batchnorm(bn, 4)
    assert thresholds[0] == 5


def test_exported_artifact_round_trips_and_keeps_exactness(tmp_path):
    net = hand_set_net([16, 12, 10, 4], 3)
    model = export_model(net, InputSpec(width=16, shape=(4, 4)), classes="abcd",
                         provenance={"preset": "custom"})
    artifact.save(model, tmp_path / "m.bnn")
    loaded = artifact.load(tmp_path / "m.bnn")
    x = random_pm1(300, 16, 9)
    bits = (x.numpy() > 0).astype(np.uint8)
    assert np.array_equal(golden.classify(loaded, bits), net(x).argmax(dim=1).numpy())
    assert loaded.classes == ("a", "b", "c", "d")


def test_export_does_not_change_the_training_mode():
    net = BinaryMLP(8, (6,), 3).train()
    export_model(net, InputSpec(width=8, shape=(8,)))
    assert net.training and all(bn.training for bn in net.bns) and net.out_norm.training
