"""The weight geometry of convolutional networks (bnnflow.model.geometry and checkpoint):
conv neurons are output channels over ``kh * kw * Cin`` windows, pool layers pass the OR of
the bits, the binarized activations are the golden model's, and malformed conv checkpoints
are refused with one line."""

import json

import numpy as np
import pytest
import torch

from bnnflow.cli import main
from bnnflow.errors import BnnflowError
from bnnflow.model import data, geometry, golden
from bnnflow.model.checkpoint import load_checkpoint
from bnnflow.model.cnn import CONV_PRESETS
from bnnflow.model.train import train_and_export

#: Small enough to train in seconds on the 8x8 digits: 8x8x1 -> 6x6x6 -> 5x5x5 -> pool -> 2x2x5.
TINY_STAGES = (("conv", 6, 3), ("conv", 5, 2), ("pool", 2), ("dense", 16))


@pytest.fixture(scope="module")
def trained_cnn(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cnn") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(CONV_PRESETS, "tiny-cnv", TINY_STAGES)
        result = train_and_export(preset="tiny-cnv", dataset="digits", epochs=2, seed=3,
                                  progress=False, out=run_dir)
    return run_dir, result


def test_conv_checkpoint_layers_have_kinds_params_and_widths(trained_cnn):
    run_dir, _ = trained_cnn
    layers = load_checkpoint(run_dir).layers
    assert [layer.kind for layer in layers] == ["binary_conv2d", "binary_conv2d", "maxpool2d",
                                                "binary_dense", "binary_dense"]
    assert [layer.in_width for layer in layers] == [64, 216, 125, 20, 16]
    assert [layer.out_width for layer in layers] == [216, 125, 20, 16, 10]
    assert layers[1].latent.shape == (5, 2 * 2 * 6) and layers[2].latent is None
    assert layers[1].params == {"in_shape": (6, 6, 6), "kernel": (2, 2)}
    assert layers[2].params == {"in_shape": (5, 5, 5), "window": 2, "stride": 2}


def test_binarized_activations_are_those_of_the_exported_conv_model(trained_cnn):
    run_dir, result = trained_cnn
    images, _ = data.test_split_for(result.model)
    inputs = geometry.layer_inputs(load_checkpoint(run_dir), images)
    bits = result.model.input.encode(images)
    expected = golden.run(result.model, bits)
    assert len(inputs) == len(result.model.layers)
    assert np.array_equal(inputs[0][1] > 0, bits == 1)
    for (_, binary), act in zip(inputs[1:], expected.activations, strict=True):
        assert np.array_equal(binary > 0, act == 1)


def _loop_windows(x, in_shape, kernel):
    """Windows by explicit loops (an independent reference for CheckpointLayer.rows)."""
    h, w, c = in_shape
    kh, kw = kernel
    m = x.reshape(len(x), h, w, c)
    return np.array([[m[b, i + a, j + d, ch] for a in range(kh) for d in range(kw)
                      for ch in range(c)]
                     for b in range(len(x)) for i in range(h - kh + 1)
                     for j in range(w - kw + 1)])


def test_conv_neurons_are_output_channels_over_their_windows(trained_cnn):
    run_dir, result = trained_cnn
    ckpt = load_checkpoint(run_dir)
    images, _ = data.test_split_for(result.model)
    images = images[:7]
    report, arrays = geometry.measure(ckpt, images, max_rows=10**6)
    assert [e["name"] for e in report["layers"]] == ["conv0", "conv1", "fc3", "fc4"]
    conv1 = report["layers"][1]
    assert (conv1["kind"], conv1["dimension"], conv1["neurons"]) == ("binary_conv2d", 24, 5)
    assert conv1["rows"] == 7 * 5 * 5 and report["layers"][2]["rows"] == 7
    assert conv1["activation_source"] == "batchnorm(conv0)"
    assert report["layers"][2]["activation_source"] == "pool2(batchnorm(conv1))"
    _, binary = geometry.layer_inputs(ckpt, images)[1]
    windows = _loop_windows(binary, (6, 6, 6), (2, 2))
    wq = np.where(ckpt.layers[1].latent >= 0, 1.0, -1.0)
    assert np.array_equal(arrays[1].dots_quantized, windows @ wq.T)
    assert np.array_equal(arrays[1].dots_latent, windows @ ckpt.layers[1].latent.T)


def test_conv_rows_are_sampled_down_to_max_rows(trained_cnn):
    run_dir, result = trained_cnn
    ckpt = load_checkpoint(run_dir)
    images, _ = data.test_split_for(result.model)
    full, full_data = geometry.measure(ckpt, images[:40], max_rows=10**6)
    part, part_data = geometry.measure(ckpt, images[:40], max_rows=100)
    assert [e["rows"] for e in part["layers"]] == [100, 100, 40, 40]
    # Sampled rows are rows of the full measure (same windows, same dot products).
    whole = {tuple(row) for row in full_data[0].dots_quantized}
    assert all(tuple(row) in whole for row in part_data[0].dots_quantized)
    with pytest.raises(ValueError, match="max_rows must be an integer >= 2, not 1"):
        geometry.measure(ckpt, images[:4], max_rows=1)


def test_geometry_command_on_a_conv_run(trained_cnn, capsys):
    run_dir, _ = trained_cnn
    assert main(["geometry", str(run_dir)]) == 0
    report = json.loads((run_dir / "geometry.json").read_text())
    assert [e["dimension"] for e in report["layers"]] == [9, 24, 20, 16]
    for entry in report["layers"]:
        assert entry["angle_mean_deg"] < entry["random_angle_mean_deg"] - 20
        assert entry["dot_correlation"] > 0.3
    out = capsys.readouterr().out
    assert "conv1" in out and "pool2" not in out


def _conv_checkpoint(tmp_path, trained_cnn, change):
    run_dir, _ = trained_cnn
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    change(ckpt["layers"])
    path = tmp_path / "checkpoint.pt"
    torch.save(ckpt, path)
    return path


def _drop_params(layers):
    del layers[1]["params"]


def _wrong_window_width(layers):
    layers[1]["latent_weight"] = torch.zeros(5, 23)


def _dense_norm_on_conv(layers):
    layers[0]["bn"]["kind"] = "batchnorm1d"


def _pool_without_window(layers):
    del layers[2]["params"]["window"]


def _kernel_too_large(layers):
    layers[1]["params"]["kernel"] = [7, 7]
    layers[1]["latent_weight"] = torch.zeros(5, 7 * 7 * 6)


def _shapes_do_not_chain(layers):
    layers[1]["params"]["in_shape"] = [6, 6, 5]
    layers[1]["latent_weight"] = torch.zeros(5, 2 * 2 * 5)


def _pool_last(layers):
    del layers[3:]


def _zero_stride(layers):
    layers[0]["params"]["stride"] = 0


@pytest.mark.parametrize(("change", "problem"), [
    (_drop_params, r"conv1 \(binary_conv2d\) needs a 'params' dict"),
    (_wrong_window_width, r"conv1.params: latent_weight must be \(Cout, 24\) for a 2x2 kernel "
                          r"over 6 channels, not \(5, 23\)"),
    (_dense_norm_on_conv, "conv0.bn.kind must be 'batchnorm2d', not 'batchnorm1d'"),
    (_pool_without_window, "pool2.params has no 'window'"),
    (_kernel_too_large, "conv1.params: kernel 7x7 is larger than the 6x6 input map"),
    (_shapes_do_not_chain, "conv1 has 180 inputs but conv0 has 216 outputs"),
    (_pool_last, "pool2 is a pool layer but the last one"),
    (_zero_stride, "conv0.params: conv stride must be a positive integer, not 0"),
])
def test_malformed_conv_checkpoint_is_one_line_error(tmp_path, trained_cnn, change, problem):
    path = _conv_checkpoint(tmp_path, trained_cnn, change)
    with pytest.raises(BnnflowError, match=problem) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_strided_convs_and_overlapping_pools_keep_their_geometry_in_the_checkpoint(tmp_path):
    # 8x8x1 -> 3x3x6 (3x3 kernel, stride 2) -> 2x2x5 -> 1x1x5 (2x2 pool, stride 1) -> 16 -> 10
    stages = (("conv", 6, 3, 3, 2), ("conv", 5, 2), ("pool", 2, 1), ("dense", 16))
    result = train_and_export(stages=stages, preset="custom", dataset="digits", epochs=2,
                              progress=False, out=tmp_path / "run")
    assert result.metrics["agreement"] == 1.0
    layers = load_checkpoint(tmp_path / "run").layers
    assert layers[0].params == {"in_shape": (8, 8, 1), "kernel": (3, 3), "stride": 2}
    assert layers[1].params == {"in_shape": (3, 3, 6), "kernel": (2, 2)}
    assert layers[2].params == {"in_shape": (2, 2, 5), "window": 2, "stride": 1}
    assert [layer.out_width for layer in layers] == [54, 20, 5, 16, 10]
    images, _ = data.test_split_for(result.model)
    bits = result.model.input.encode(images[:50])
    assert layers[0].rows(bits).shape == (50 * 9, 9)
    inputs = geometry.layer_inputs(load_checkpoint(tmp_path / "run"), images[:50])
    for (_, binary), act in zip(inputs[1:], golden.run(result.model, bits).activations,
                                strict=True):
        assert np.array_equal(binary > 0, act == 1)


@pytest.mark.parametrize("options", [{}, {"input_bits": 8, "act_bits": 2},
                                     {"weights": "ternary"}])
def test_padded_convs_train_export_exactly_and_their_checkpoint_pads_alike(tmp_path, options):
    # 8x8x1 -> 8x8x4 (3x3, pad 1) -> 4x4x5 (3x3, stride 2, pad 1) -> 12 -> 10; pad code 0
    stages = (("conv", 4, 3, 3, 1, 1), ("conv", 5, 3, 3, 2, 1), ("dense", 12))
    result = train_and_export(stages=stages, preset="custom", dataset="digits", epochs=1,
                              progress=False, out=tmp_path / "run", **options)
    assert result.metrics["agreement"] == 1.0
    conv0, conv1 = result.model.layers[:2]
    assert (conv0.pad, conv0.pad_value, conv0.out_shape) == (1, 0, (8, 8, 4))
    assert (conv1.stride, conv1.pad, conv1.pad_value, conv1.out_shape) == (2, 1, 0, (4, 4, 5))
    layers = load_checkpoint(tmp_path / "run").layers
    in_bits = options.get("input_bits", 1)
    act_fill = -float((1 << options.get("act_bits", 1)) - 1)
    assert layers[0].params["pad"] == 1 and layers[0].params["pad_fill"] == -((1 << in_bits) - 1)
    assert layers[1].params["pad_fill"] == act_fill
    images, _ = data.test_split_for(result.model)
    ckpt = load_checkpoint(tmp_path / "run")
    inputs = geometry.layer_inputs(ckpt, images[:40], geometry.trained_weights(ckpt))
    expected = golden.run(result.model, result.model.input.encode(images[:40]))
    levels = (1 << options.get("act_bits", 1)) - 1
    for (_, quantized), act in zip(inputs[1:], expected.activations, strict=True):
        assert np.array_equal(quantized, 2 * act.astype(float) - levels)
