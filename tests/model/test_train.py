import json

import numpy as np
import pytest
import torch

from bnnflow.cli import main
from bnnflow.errors import BnnflowError
from bnnflow.model import artifact, data, golden, train
from bnnflow.model.train import TrainConfig, train_and_export

TINY = {"hidden": (24, 16), "epochs": 2, "progress": False}


def test_same_seed_gives_same_weights_and_metrics():
    a = train_and_export(seed=3, **TINY)
    b = train_and_export(seed=3, **TINY)
    c = train_and_export(seed=4, **TINY)
    sa, sb, sc = a.net.state_dict(), b.net.state_dict(), c.net.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["fcs.0.weight"], sc["fcs.0.weight"])
    assert a.metrics["history"] == b.metrics["history"]
    for la, lb in zip(a.model.layers, b.model.layers, strict=True):
        assert np.array_equal(la.weights, lb.weights)


def test_training_keeps_latent_weights_clipped():
    result = train_and_export(lr=0.5, **TINY)  # large steps push weights past the clip range
    weights = [fc.weight.detach() for fc in result.net.fcs]
    assert all(float(w.abs().max()) <= 1.0 for w in weights)
    assert any(float(w.abs().max()) == 1.0 for w in weights)


@pytest.mark.parametrize("hidden, dataset", [((32, 32), "digits"), ((20,), "mnist5k")])
def test_golden_model_on_artifact_gives_pytorch_class_for_every_test_image(hidden, dataset):
    result = train_and_export(hidden=hidden, dataset=dataset, epochs=2, progress=False)
    m = result.metrics
    assert m["agreement"] == 1.0 and m["golden_accuracy"] == m["test_accuracy"]
    # Independent re-check, layer by layer, on every test image.
    from bnnflow.model import data

    x_test, _ = data.test_split_for(result.model)
    bits = result.model.input.encode(x_test)
    g = golden.run(result.model, bits)
    net = result.net.eval()
    t = net.trace(torch.from_numpy(bits.astype(np.float32) * 2 - 1))
    assert np.array_equal(g.classes, t["scores"].argmax(dim=1).numpy())
    for got, want in zip(g.activations, t["activations"], strict=True):
        assert np.array_equal(got, (want.numpy() > 0).astype(np.uint8))
    assert m["n_test"] == len(x_test)


def test_float_baseline_reports_float_accuracy():
    result = train_and_export(float_baseline=True, **TINY)
    assert 0.0 < result.metrics["float_accuracy"] <= 1.0
    assert result.model.provenance["float_accuracy"] == result.metrics["float_accuracy"]
    assert len(result.metrics["float_history"]["loss"]) == 2


def test_random_shift_moves_images_with_background_fill():
    images = torch.arange(2 * 3 * 3, dtype=torch.float32).reshape(2, 3, 3) + 1
    gen = torch.Generator().manual_seed(0)
    shifted = train.random_shift(images, 1, -1.0, gen)
    assert shifted.shape == images.shape
    for before, after in zip(images, shifted, strict=True):
        kept = after[after != -1.0]
        assert set(kept.tolist()) <= set(before.flatten().tolist())
        assert len(kept) in (4, 6, 9)  # a corner, edge or no shift of a 3x3 image


def test_cli_train_writes_all_four_files(tmp_path, capsys):
    out = tmp_path / "run"
    status = main(["train", "--hidden", "24,16", "--epochs", "2", "--seed", "5",
                   "--out", str(out), "--quiet", "--float-baseline"])
    assert status == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(train.OUTPUT_FILES)
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("dataset", "preset", "hidden", "seed", "epochs", "train_seconds",
                "test_accuracy", "golden_accuracy", "agreement", "float_accuracy"):
        assert key in metrics
    assert metrics["agreement"] == 1.0 and metrics["preset"] == "custom"
    assert metrics["hidden"] == [24, 16] and metrics["seed"] == 5
    model = artifact.load(out / "model.bnn")
    prov = model.provenance
    assert prov["dataset"] == "digits" and prov["golden_accuracy"] == metrics["golden_accuracy"]
    assert prov["test_accuracy"] == metrics["test_accuracy"]
    assert (out / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["format"] == "bnnflow-checkpoint" and ckpt["version"] == 1
    assert ckpt["config"]["input_encoding"] == {"kind": "thermometer", "scale": 16.0,
                                                "thresholds": [0.25, 0.5, 0.75]}
    assert model.input.width == 3 * 64 and metrics["input_threshold"] == [0.25, 0.5, 0.75]
    assert [layer["bn"]["kind"] for layer in ckpt["layers"]] == ["batchnorm1d"] * 2 + \
        ["output_scale"]
    assert "wrote" in capsys.readouterr().out


def test_cli_train_stages_builds_strided_convs_and_overlapping_pools(tmp_path, capsys):
    out = tmp_path / "run"
    status = main(["train", "--stages", "C6k3s2-p2s1-d16", "--epochs", "1", "--out", str(out),
                   "--quiet"])
    assert status == 0
    assert capsys.readouterr().out.startswith("custom c6k3s2-p2s1-d16 on digits: 1 epoch in ")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["preset"] == "custom" and metrics["agreement"] == 1.0
    assert metrics["stages"] == [["conv", 6, 3, 3, 2], ["pool", 2, 1], ["dense", 16]]
    model = artifact.load(out / "model.bnn")
    conv, pool = model.layers[:2]
    assert (conv.in_shape, conv.kernel, conv.stride, conv.out_shape) == (
        (8, 8, 1), (3, 3), 2, (3, 3, 6))
    assert (pool.window, pool.stride, pool.out_shape) == (2, 1, (2, 2, 6))
    x_test, y_test = data.test_split_for(model)
    assert np.mean(golden.run_images(model, x_test).classes == y_test) == \
        metrics["golden_accuracy"]


def test_checkpoint_forward_pass_reproduces_the_artifact(tmp_path):
    result = train_and_export(out=tmp_path, **TINY)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    bits = result.model.input.encode(np.random.default_rng(0).integers(0, 17, (200, 64)))
    x = torch.from_numpy(bits.astype(np.float32) * 2 - 1)
    for layer in ckpt["layers"]:
        bn = layer["bn"]
        z = x @ torch.where(layer["latent_weight"] >= 0, 1.0, -1.0).T
        y = torch.nn.functional.batch_norm(z, bn["running_mean"], bn["running_var"],
                                           bn["weight"], bn["bias"], False, 0.0, bn["eps"])
        x = torch.where(y >= 0, 1.0, -1.0)
    assert np.array_equal(y.argmax(dim=1).numpy(), golden.classify(result.model, bits))


@pytest.mark.parametrize("argv, message", [
    (["--hidden", "12,x"], "--hidden must be comma-separated positive layer widths"),
    (["--hidden", "0"], "--hidden must be comma-separated positive layer widths"),
    (["--epochs", "0"], "--epochs must be a positive integer, not 0"),
    (["--input-threshold", "1.5"], "--input-threshold must be 1 to 16 ascending values in (0, 1]"),
    (["--input-threshold", "0.5,0.25"], "ascending values in (0, 1] (fractions of the pixel full "
                                        "scale), not '0.5,0.25'"),
    (["--input-threshold", "half"], "--input-threshold must be one or more comma-separated"),
    (["--lr", "-1"], "--lr must be positive"),
    (["--dropout", "1"], "--dropout must be in [0, 1), not 1.0"),
    (["--augment-shift", "-1"], "--augment-shift must be a non-negative integer, not -1"),
    (["--dataset", "mnist"], "needs --data-dir"),
    (["--preset", "cnv-mnist", "--hidden", "12"], "--hidden sets the widths of an MLP preset"),
    (["--preset", "cnv-mnist", "--dataset", "mnist5k", "--input-threshold", "0.3,0.6"],
     "--input-threshold must be one value for the convolutional preset cnv-mnist (a "
     "thermometer code is level-major, not a channels-last map), not 0.3,0.6"),
    (["--preset", "cnv-mnist"], "preset cnv-mnist does not fit the 8x8 images of digits "
                                "(stage 3 ('conv', 32, 3): kernel 3x3 is larger than the 2x2 input "
                                "map); choose a data set with larger images"),
    (["--stages", "c4k3x"], "--stages: stage 'c4k3x' of 'c4k3x' must be cNkK, cNkKsS or "
                            "cNkKsSpP (conv, stride S, padding P), pW or pWsS (max-pool, stride "
                            "S) or dN (dense), with positive N, K, W and S; like "
                            "c16k3s2-c16k3-p2-d64"),
    (["--stages", "c4k3", "--hidden", "8"], "--hidden makes an MLP and --stages a convolutional "
                                            "network: give one or the other"),
    (["--stages", "d8-d4"], "--stages has no conv or pool stage: for an MLP give --hidden 8,4"),
    (["--stages", "p2-d8", "--input-bits", "8"], "--stages: a pool cannot take 8-bit pixels: "
                                                 "start with a conv stage, or drop --input-bits"),
    (["--stages", "c4k3-d8", "--input-threshold", "0.3,0.6"],
     "--input-threshold must be one value for the convolutional network c4k3-d8 (a"),
    (["--stages", "c4k5s2-c4k3"], "network c4k5s2-c4k3 does not fit the 8x8 images of digits "
                                  "(stage 1 ('conv', 4, 3): kernel 3x3 is larger than the 2x2 "
                                  "input map); choose smaller windows or strides in --stages, or "
                                  "a data set with larger images"),
    (["--dataset", "mnist", "--data-dir", "nowhere"], "t10k-labels-idx1-ubyte[.gz]"),
])
def test_cli_train_bad_input_is_one_line_error_and_writes_nothing(tmp_path, capsys, argv,
                                                                  message):
    out = tmp_path / "run"
    status = main(["train", "--out", str(out), "--quiet", *argv])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_failure_while_writing_leaves_no_stray_files(tmp_path, monkeypatch):
    def broken_plot(path, histories):
        path.write_bytes(b"partial")
        raise BnnflowError("plot failed")

    monkeypatch.setattr(train, "plot_histories", broken_plot)
    with pytest.raises(BnnflowError, match="plot failed"):
        train_and_export(out=tmp_path / "run", **TINY)
    assert not (tmp_path / "run").exists()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "other.txt").write_text("x")
    with pytest.raises(BnnflowError):
        train_and_export(out=tmp_path / "kept", **TINY)
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["other.txt"]


def test_config_defaults_and_validation():
    cfg = TrainConfig().resolved()
    assert cfg.hidden == (64, 64, 64) and cfg.epochs == train.default_epochs("tfc", "digits")
    assert TrainConfig(preset="sfc").resolved().hidden == (256, 256, 256)
    # Beyond W1A1 the default is twice the preset's epochs; an explicit --epochs stays.
    for options in ({"weights": "ternary"}, {"act_bits": 2}, {"input_bits": 8}):
        cfg = TrainConfig(dataset="mnist5k", **options).resolved()
        assert cfg.beyond_w1a1 and cfg.epochs == 2 * train.default_epochs("tfc", "mnist5k") == 80
        assert TrainConfig(act_bits=2, epochs=7, **{k: v for k, v in options.items()
                                                     if k != "act_bits"}).resolved().epochs == 7
    assert not TrainConfig().beyond_w1a1
    with pytest.raises(BnnflowError, match="unknown preset 'xfc'"):
        TrainConfig(preset="xfc").resolved()
    # A conv preset's stages are filled in; custom stages are checked.
    cnv = TrainConfig(preset="cnv-mnist").resolved()
    assert cnv.conv and cnv.hidden is None and cnv.stages[2] == ("pool", 2)
    with pytest.raises(BnnflowError, match=r"--stages: stage 1 must be \('conv', channels, k\)"):
        TrainConfig(preset="custom", stages=(("conv", 4, 3), ("conv", 4))).resolved()


def test_random_shift_moves_every_level_of_a_thermometer_image_alike():
    images = torch.arange(4 * 5 * 5, dtype=torch.float32).reshape(4, 1, 5, 5).repeat(1, 3, 1, 1)
    images[:, 1] += 1000
    out = train.random_shift(images, 1, -1.0, torch.Generator().manual_seed(0))
    single = train.random_shift(images[:, 0], 1, -1.0, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    assert torch.equal(out[:, 0], single) and torch.equal(out[:, 2], single)
    assert torch.equal(out[:, 1] - 1000, torch.where(single == -1.0, -1001.0, single))


def test_thermometer_inputs_with_shifts_export_exactly():
    result = train_and_export(input_threshold=(0.3, 0.6), augment_shift=1, seed=2, **TINY)
    assert result.model.input.encoding["kind"] == "thermometer"
    assert result.model.input.width == 2 * 64 and result.metrics["agreement"] == 1.0


def test_conv_preset_trains_and_exports_exactly_with_stages_recorded(tmp_path):
    result = train_and_export(preset="cnv-mnist", dataset="mnist5k", epochs=1, progress=False,
                              out=tmp_path / "run")
    m = result.metrics
    assert m["agreement"] == 1.0 and "hidden" not in m
    assert m["stages"][0] == ["conv", 16, 3] and m["stages"][2] == ["pool", 2]
    model = artifact.load(tmp_path / "run" / "model.bnn")
    assert [layer.kind for layer in model.layers] == [
        "binary_conv2d", "binary_conv2d", "maxpool2d", "binary_conv2d", "binary_conv2d",
        "maxpool2d", "binary_dense", "binary_dense"]
    assert model.input.map_shape == (28, 28, 1)
    assert model.provenance["stages"] == m["stages"]
    x_test, y_test = data.test_split_for(model)
    assert golden.run_images(model, x_test).classes.tolist() == \
        golden.run_images(result.model, x_test).classes.tolist()
    assert np.mean(golden.run_images(model, x_test).classes == y_test) == m["golden_accuracy"]


def test_cnv_trains_one_epoch_on_tiny_cifar10_batches(tmp_path):
    from tests.model.cifar_files import write_cifar_batches

    write_cifar_batches(tmp_path / "cifar", n_per_batch=4, n_test=6, seed=1)
    result = train_and_export(preset="cnv", dataset="cifar10", data_dir=tmp_path / "cifar",
                              epochs=1, progress=False, out=tmp_path / "run")
    m = result.metrics
    assert m["agreement"] == 1.0 and (m["n_train"], m["n_test"]) == (20, 6)
    model = artifact.load(tmp_path / "run" / "model.bnn")
    assert model.input.map_shape == (32, 32, 3) and model.input.width == 3072
    assert [getattr(layer, "out_shape", None) for layer in model.layers[:8]] == [
        (30, 30, 64), (28, 28, 64), (14, 14, 64), (12, 12, 128), (10, 10, 128), (5, 5, 128),
        (3, 3, 256), (1, 1, 256)]
    assert [layer.out_width for layer in model.layers[8:]] == [512, 512, 10]
    x_test, _ = data.test_split_for(model)
    assert np.array_equal(golden.run_images(model, x_test).classes,
                          golden.run_images(result.model, x_test).classes)
