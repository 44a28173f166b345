import numpy as np
import pytest
import torch

from bnnflow.model import conventions
from bnnflow.model.layers import (
    BinaryActivation,
    BinaryConv2d,
    BinaryLinear,
    OutputNorm,
    TernaryConv2d,
    clip_latent,
    sign_ste,
)
from bnnflow.model.nets import BinaryMLP, FloatMLP, hidden_for


def test_sign_of_zero_is_plus_one():
    x = torch.tensor([-2.0, -1e-30, -0.0, 0.0, 1e-30, 3.0])
    assert torch.equal(sign_ste(x), torch.tensor([-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]))
    assert torch.equal(BinaryActivation()(x), sign_ste(x))


@pytest.mark.parametrize("value, passes", [(-3.0, False), (-1.0001, False), (-1.0, True),
                                           (-0.5, True), (0.0, True), (0.999, True),
                                           (1.0, True), (1.0001, False), (7.0, False)])
def test_ste_passes_gradient_only_where_abs_at_most_one(value, passes):
    x = torch.tensor([value], requires_grad=True)
    (sign_ste(x) * 3.5).sum().backward()
    assert x.grad.item() == (3.5 if passes else 0.0)


def test_binary_linear_forward_uses_sign_of_latent_weights():
    layer = BinaryLinear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.3, -0.2, 0.0], [-0.9, -0.1, 0.5]]))
    x = torch.tensor([[1.0, 1.0, -1.0], [-1.0, 1.0, 1.0]])
    # sign(W) = [[1, -1, 1], [-1, -1, 1]]
    assert torch.equal(layer(x).detach(), torch.tensor([[-1.0, -3.0], [-1.0, 1.0]]))


def test_binary_linear_gradient_reaches_latent_weights_only_inside_clip_range():
    layer = BinaryLinear(4, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -1.0, 1.5, -2.0]]))
    x = torch.tensor([[1.0, -1.0, 1.0, 1.0]])
    layer(x).sum().backward()
    # d z / d sign(W) = x; passed where |W| <= 1.
    assert torch.equal(layer.weight.grad, torch.tensor([[1.0, -1.0, 0.0, 0.0]]))


def test_clip_keeps_latent_weights_in_unit_interval_after_optimizer_step():
    torch.manual_seed(0)
    net = BinaryMLP(6, (5,), 3)
    opt = torch.optim.SGD(net.parameters(), lr=100.0)
    x = torch.where(torch.rand(8, 6) < 0.5, -1.0, 1.0)
    torch.nn.functional.cross_entropy(net(x), torch.arange(8) % 3).backward()
    opt.step()
    assert max(float(fc.weight.detach().abs().max()) for fc in net.fcs) > 1.0
    clip_latent(net)
    for fc in net.fcs:
        assert float(fc.weight.detach().abs().max()) <= 1.0
        assert float(fc.weight.detach().abs().max()) == 1.0  # some weights were clamped to the edge


def test_glorot_init_bound():
    torch.manual_seed(0)
    layer = BinaryLinear(100, 50)
    bound = (6 / 150) ** 0.5
    assert float(layer.weight.detach().abs().max()) <= bound
    assert float(layer.weight.detach().abs().max()) > 0.9 * bound


@pytest.mark.parametrize("args, message", [
    ((0, 3), "in_features must be a positive integer, not 0"),
    ((3, 2.5), "out_features must be a positive integer, not 2.5"),
])
def test_binary_linear_rejects_bad_sizes(args, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        BinaryLinear(*args)


@pytest.mark.parametrize("cls", [BinaryMLP, FloatMLP])
def test_nets_reject_bad_dropout(cls):
    with pytest.raises(ValueError, match=r"^dropout must be in \[0, 1\), not 1.0$"):
        cls(4, (3,), 2, dropout=1.0)


def test_presets():
    assert hidden_for("tfc") == (64, 64, 64)
    assert hidden_for("sfc") == (256, 256, 256)
    assert hidden_for("lfc") == (1024, 1024, 1024)
    with pytest.raises(ValueError, match="^preset must be one of tfc, sfc, lfc, not 'xfc'$"):
        hidden_for("xfc")


def test_output_norm_preserves_argmax_and_uses_shared_statistics():
    torch.manual_seed(0)
    norm = OutputNorm()
    z = torch.randint(-20, 21, (32, 10)).float() * 2
    norm.train()
    y = norm(z).detach()
    assert torch.equal(y.argmax(dim=1), z.argmax(dim=1))
    assert abs(float(y.mean())) < 1e-5  # one mean over the whole tensor
    assert float(norm.running_mean) == pytest.approx(0.1 * float(z.mean()))
    norm.eval()
    with torch.no_grad():
        norm.log_scale.fill_(1.3)
    y = norm(z).detach()
    assert torch.equal(y.argmax(dim=1), z.argmax(dim=1))


def test_binary_mlp_trace_dots_are_integer_dot_products():
    torch.manual_seed(1)
    net = BinaryMLP(9, (7, 5), 3).eval()
    x = torch.where(torch.rand(20, 9) < 0.5, -1.0, 1.0)
    t = net.trace(x)
    w0 = net.fcs[0].binary_weight().numpy().astype(np.int64)
    assert np.array_equal(t["dots"][0].numpy().astype(np.int64), x.numpy().astype(np.int64)
                          @ w0.T)
    assert [d.shape[1] for d in t["dots"]] == [7, 5, 3]
    assert torch.equal(t["scores"], net(x))


@pytest.mark.parametrize("cls", [BinaryConv2d, TernaryConv2d])
@pytest.mark.parametrize("kernel, stride", [(3, 1), (3, 2), ((3, 2), 3), ((2, 3), 2)])
def test_conv_forward_is_the_window_dot_product_of_the_conventions(cls, kernel, stride):
    torch.manual_seed(0)
    conv = cls(3, 5, kernel, stride=stride)
    x = torch.where(torch.rand(4, 3, 9, 8) < 0.5, -1.0, 1.0)
    z = conv(x)
    flat = x.permute(0, 2, 3, 1).reshape(4, -1).numpy()
    windows = conventions.windows(flat, (9, 8, 3), conv.kernel, stride)
    w = (conv.ternary_window_weight() if cls is TernaryConv2d else
         torch.where(conv.window_weight() >= 0, 1.0, -1.0)).numpy()
    assert np.array_equal(z.permute(0, 2, 3, 1).reshape(4, -1, 5).detach().numpy(),
                          windows @ w.T)
    assert conv.kernel == ((kernel,) * 2 if isinstance(kernel, int) else kernel)


@pytest.mark.parametrize("args, message", [
    ((2, 3, 3, 1.0, 0), "stride must be a positive integer, not 0"),
    ((2, 3, (3, 0)), "kernel_size must be a positive integer, not 0"),
    ((2, 3, (3, 3, 3)), r"kernel_size must be k or \(kh, kw\), not \(3, 3, 3\)"),
])
def test_conv_rejects_bad_kernel_and_stride(args, message):
    with pytest.raises(ValueError, match=message):
        BinaryConv2d(*args)
