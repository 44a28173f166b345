"""Tests of bnnflow.model.geometry (the measures and the forward pass through the layer
kinds) and the ``bnnflow geometry`` command."""

import json
import math

import numpy as np
import pytest
import torch

from bnnflow.cli import main
from bnnflow.model import geometry
from bnnflow.model.checkpoint import load_checkpoint

SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


# --- the statistical facts ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(geometry.QUANTIZERS))
def test_gaussian_weights_keep_the_theoretical_angle_to_their_quantized_version(name):
    quantizer = geometry.QUANTIZERS[name]
    w = np.random.default_rng(1).standard_normal((100, 10_000))
    angles = geometry.row_angles_deg(w, quantizer.quantize(w))
    assert abs(angles.mean() - quantizer.theory_angle_deg) < 1.0
    # Every single neuron, not only the mean, is close to the limit at this dimension.
    assert np.all(np.abs(angles - quantizer.theory_angle_deg) < 1.5)


def test_binary_theory_angle_is_arccos_sqrt_2_over_pi():
    assert geometry.THEORY_ANGLE_DEG == pytest.approx(math.degrees(math.acos(SQRT_2_OVER_PI)))
    assert geometry.THEORY_ANGLE_DEG == pytest.approx(37.07, abs=0.01)


def test_dot_product_correlation_for_gaussian_inputs_is_cosine_of_angle():
    rng = np.random.default_rng(2)
    d, neurons, batches, batch = 4000, 8, 8, 1000
    w = rng.standard_normal((neurons, d))
    b = geometry.QUANTIZERS["binary"].quantize(w)
    latent_dots, binary_dots = [], []
    for _ in range(batches):
        a = rng.standard_normal((batch, d))
        latent_dots.append(a @ w.T)
        binary_dots.append(a @ b.T)
    latent_dots = np.concatenate(latent_dots)
    binary_dots = np.concatenate(binary_dots)
    per_neuron = geometry.per_column_correlation(latent_dots, binary_dots)
    cosines = np.cos(np.radians(geometry.row_angles_deg(w, b)))
    assert np.all(np.abs(per_neuron - SQRT_2_OVER_PI) < 0.02)
    assert np.all(np.abs(per_neuron - cosines) < 0.02)
    assert abs(geometry.correlation(latent_dots, binary_dots) - SQRT_2_OVER_PI) < 0.02


def test_random_gaussian_pairs_are_nearly_orthogonal():
    d = 10_000
    angles = geometry.random_angles_deg(d, pairs=1000, seed=3)
    assert abs(angles.mean() - 90.0) < 0.1
    assert angles.std() == pytest.approx(math.degrees(1 / math.sqrt(d)), rel=0.1)


# --- the measures ------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "expected"), [
    ([1.0, 0.0], [1.0, 1.0], 45.0),
    ([1.0, 0.0], [0.0, 3.0], 90.0),
    ([2.0, -2.0], [-1.0, 1.0], 180.0),
    ([0.5, 0.5, 0.5], [1.0, 1.0, 1.0], 0.0),
])
def test_row_angles_of_known_vectors(a, b, expected):
    assert geometry.row_angles_deg([a], [b])[0] == pytest.approx(expected, abs=1e-5)


def test_row_angle_with_a_zero_vector_is_nan():
    angles = geometry.row_angles_deg([[0.0, 0.0], [1.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]])
    assert np.isnan(angles[0])
    assert angles[1] == pytest.approx(0.0)


def test_correlation_of_a_constant_is_none():
    assert geometry.correlation([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None


def test_per_column_correlation_matches_numpy():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((50, 3))
    y = x + rng.standard_normal((50, 3))
    expected = [np.corrcoef(x[:, j], y[:, j])[0, 1] for j in range(3)]
    assert np.allclose(geometry.per_column_correlation(x, y), expected)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: geometry.random_angles_deg(0), "dimension must be a positive integer, not 0"),
    (lambda: geometry.random_angles_deg(5, pairs=0), "pairs must be a positive integer, not 0"),
    (lambda: geometry.row_angles_deg([[1.0]], [[1.0, 2.0]]),
     "a and b must have the same shape, not (1, 1) and (1, 2)"),
])
def test_bad_parameters_are_named(call, message):
    with pytest.raises(ValueError, match=f"^{__import__('re').escape(message)}$"):
        call()


def test_unknown_quantizer_is_rejected(tmp_path, make_checkpoint, digit_like_images):
    make_checkpoint(tmp_path, [64, 16, 10])
    with pytest.raises(ValueError, match=r"^quantizer must be one of \['binary', 'ternary', "
                                         r"'ternary-balanced'\], not 'quaternary'$"):
        geometry.analyze(tmp_path, quantizer="quaternary", images=digit_like_images(10))


# --- the forward pass and the report ----------------------------------------------------


def test_layer_inputs_follow_the_trained_forward_pass(tmp_path, make_checkpoint, digit_like_images):
    ckpt = make_checkpoint(tmp_path, [64, 32, 16, 10], seed=5)
    images = digit_like_images(40, seed=5)
    inputs = geometry.layer_inputs(load_checkpoint(tmp_path), images)
    # Independent reference in torch: x0 = +-1 pixels, z = x @ sign(W).T, y = BN(z), x = sign(y).
    pix = torch.tensor(images.reshape(40, -1)) / 16.0 - 0.5
    x = torch.where(pix >= 0, 1.0, -1.0).double()
    assert np.array_equal(inputs[0][1], x.numpy())
    assert np.allclose(inputs[0][0], pix.numpy())
    for i, layer in enumerate(ckpt["layers"][:-1]):
        w = layer["latent_weight"].double()
        bn = {k: v.double() for k, v in layer["bn"].items() if isinstance(v, torch.Tensor)}
        y = torch.nn.functional.batch_norm(x @ torch.where(w >= 0, 1.0, -1.0).double().T,
                                           bn["running_mean"], bn["running_var"], bn["weight"],
                                           bn["bias"], training=False, eps=layer["bn"]["eps"])
        x = torch.where(y >= 0, 1.0, -1.0).double()
        assert np.allclose(inputs[i + 1][0], y.numpy())
        assert np.array_equal(inputs[i + 1][1], x.numpy())
    assert len(inputs) == 3


def test_weights_that_are_already_binary_have_zero_angle_and_full_correlation(tmp_path,
                                                                              make_checkpoint,
                                                                              digit_like_images):
    def scaled_signs(n, k, gen):
        return torch.where(torch.randn(n, k, generator=gen) >= 0, 0.25, -0.25)

    make_checkpoint(tmp_path, [64, 16, 10], latent=scaled_signs)
    report = geometry.analyze(tmp_path, images=digit_like_images(30))
    for entry in report["layers"]:
        assert entry["angle_mean_deg"] == pytest.approx(0.0, abs=1e-5)
        assert entry["dot_correlation"] == pytest.approx(1.0)


def test_report_has_the_documented_keys_and_plausible_values(tmp_path, make_checkpoint,
                                                             digit_like_images):
    make_checkpoint(tmp_path, [64, 48, 32, 10], seed=6)
    report = geometry.analyze(tmp_path, images=digit_like_images(100, seed=6))
    assert report["theory_angle_deg"] == pytest.approx(geometry.THEORY_ANGLE_DEG)
    assert report["test_samples"] == 100
    assert [e["name"] for e in report["layers"]] == ["fc0", "fc1", "fc2"]
    assert [e["dimension"] for e in report["layers"]] == [64, 48, 32]
    for entry in report["layers"]:
        # Gaussian latent weights of dimension 32..64: near 37 degrees, far from random.
        assert abs(entry["angle_mean_deg"] - geometry.THEORY_ANGLE_DEG) < 3.0
        assert entry["angle_std_deg"] > 0
        assert abs(entry["random_angle_mean_deg"] - 90.0) < 1.0
        assert 0.5 < entry["dot_correlation"] <= 1.0
        assert sum(entry["angle_histogram"]["counts"]) == entry["neurons"]
        assert -1.0 <= entry["activation_dot_correlation"] <= 1.0
    assert report["layers"][0]["activation_source"] == "pixels / scale - threshold"
    assert report["layers"][1]["activation_source"] == "batchnorm(fc0)"


def test_max_samples_limits_the_test_images(tmp_path, make_checkpoint, digit_like_images):
    make_checkpoint(tmp_path, [64, 16, 10])
    report = geometry.analyze(tmp_path, images=digit_like_images(50), max_samples=20)
    assert report["test_samples"] == 20


# --- the command ---------------------------------------------------------------------------


@pytest.fixture
def fake_test_split(monkeypatch, digit_like_images):
    monkeypatch.setattr(geometry, "split_images", lambda ckpt: digit_like_images(60, seed=7))


def test_cli_writes_report_and_plots_at_default_places(tmp_path, capsys, fake_test_split,
                                                       make_checkpoint):
    make_checkpoint(tmp_path, [64, 32, 16, 10])
    assert main(["geometry", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "geometry.json").read_text())
    assert set(report) >= {"theory_angle_deg", "layers", "quantizer"}
    for entry in report["layers"]:
        assert set(entry) >= {"name", "dimension", "angle_mean_deg", "angle_std_deg",
                              "random_angle_mean_deg", "dot_correlation"}
    for name in ("angles", "dots", "activations"):
        png = tmp_path / "geometry" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size < 100_000
    assert sorted(p.name for p in (tmp_path / "geometry").iterdir()) == [
        "activations.png", "angles.png", "dots.png"]
    out = capsys.readouterr().out
    assert "fc0" in out and "fc2" in out and "37.1" in out


def test_cli_honours_report_plots_and_quantizer_options(tmp_path, fake_test_split, make_checkpoint):
    make_checkpoint(tmp_path / "run", [64, 16, 10])
    report_path = tmp_path / "out" / "r.json"
    plots = tmp_path / "plots"
    assert main(["geometry", str(tmp_path / "run"), "--report", str(report_path),
                 "--plots", str(plots), "--quantizer", "ternary"]) == 0
    report = json.loads(report_path.read_text())
    assert report["quantizer"] == "ternary"
    assert [e["quantizer"] for e in report["layers"]] == ["ternary", "ternary"]   # as asked
    assert report["theory_angle_deg"] == pytest.approx(
        geometry.QUANTIZERS["ternary"].theory_angle_deg)
    assert (plots / "angles.png").is_file()
    assert not (tmp_path / "run" / "geometry.json").exists()


@pytest.mark.parametrize("missing", ["", "no_such_run"])
def test_cli_missing_checkpoint_exits_2_and_writes_nothing(tmp_path, capsys, missing):
    run_dir = tmp_path / missing
    assert main(["geometry", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run_dir / 'checkpoint.pt'}: ")
    assert f"bnnflow train --out {run_dir}" in err
    assert err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


# --- a real training run -------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_tfc_digits(tmp_path_factory):
    from bnnflow.model.train import train_and_export

    out = tmp_path_factory.mktemp("tfc_digits")
    result = train_and_export(preset="tfc", dataset="digits", epochs=2, out=str(out),
                              progress=False)
    return out, result


def test_trained_tfc_on_digits_produces_report_and_plots(trained_tfc_digits, capsys):
    run_dir, result = trained_tfc_digits
    assert main(["geometry", str(run_dir)]) == 0
    report = json.loads((run_dir / "geometry.json").read_text())
    assert report["dataset"] == "digits"
    assert report["test_samples"] == result.metrics["n_test"]
    assert [e["dimension"] for e in report["layers"]] == [3 * 64, 64, 64, 64]
    for entry in report["layers"]:
        # Binarization keeps each neuron far closer to its latent weights than chance.
        assert entry["angle_mean_deg"] < entry["random_angle_mean_deg"] - 30
        assert entry["dot_correlation"] > 0.5
        assert entry["activation_dot_correlation"] > 0.5
    for name in ("angles", "dots", "activations"):
        assert (run_dir / "geometry" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert "fc3" in capsys.readouterr().out


def test_binarized_activations_are_those_of_the_exported_model(trained_tfc_digits):
    from bnnflow.model import golden
    from bnnflow.model.data import test_split_for

    run_dir, result = trained_tfc_digits
    images, _ = test_split_for(result.model)
    inputs = geometry.layer_inputs(load_checkpoint(run_dir), images)
    expected = golden.run(result.model, result.model.input.encode(images))
    assert np.array_equal(inputs[0][1] > 0, result.model.input.encode(images) == 1)
    for (_, binary), bits in zip(inputs[1:], expected.activations, strict=True):
        assert np.array_equal(binary > 0, bits == 1)


def test_8_bit_input_run_measures_its_levels_and_the_exported_activations(tmp_path):
    from bnnflow.model import golden
    from bnnflow.model.data import test_split_for
    from bnnflow.model.train import train_and_export

    result = train_and_export(hidden=(16, 12), dataset="digits", epochs=2, input_bits=8,
                              out=str(tmp_path / "r"), progress=False)
    images, _ = test_split_for(result.model)
    inputs = geometry.layer_inputs(load_checkpoint(tmp_path / "r"), images)
    levels = result.model.input.encode(images).astype(float)
    assert np.array_equal(inputs[0][1], 2 * levels - 255)     # the first layer's input
    assert np.abs(inputs[0][0] - inputs[0][1]).max() <= 1 + 1e-9   # rounding to a level
    expected = golden.run(result.model, result.model.input.encode(images))
    for (_, binary), bits in zip(inputs[1:], expected.activations, strict=True):
        assert np.array_equal(binary > 0, bits == 1)
    report = geometry.analyze(tmp_path / "r")
    assert report["layers"][0]["activation_dot_correlation"] > 0.999


@pytest.mark.parametrize("quantizer", ["uniform", "balanced"])
def test_n_bit_activations_are_the_exported_levels(tmp_path, quantizer):
    from bnnflow.model import golden
    from bnnflow.model.data import test_split_for
    from bnnflow.model.train import train_and_export

    result = train_and_export(hidden=(16, 12), dataset="digits", epochs=2, act_bits=2,
                              quantizer=quantizer, out=str(tmp_path / "r"), progress=False)
    images, _ = test_split_for(result.model)
    inputs = geometry.layer_inputs(load_checkpoint(tmp_path / "r"), images)
    expected = golden.run(result.model, result.model.input.encode(images))
    for (cont, levels), a in zip(inputs[1:], expected.activations, strict=True):
        assert np.array_equal(levels, 2.0 * a - 3)                 # levels -3, -1, 1, 3
        assert cont.shape == levels.shape
    report = geometry.analyze(tmp_path / "r")
    assert [e["name"] for e in report["layers"]] == ["fc0", "fc1", "fc2"]
    assert all(0 < e["activation_angle_mean_deg"] < 90 for e in report["layers"][1:])


def test_analyze_loads_the_recorded_test_split(trained_tfc_digits):
    from bnnflow.model.data import test_split_for

    run_dir, result = trained_tfc_digits
    images, _ = test_split_for(result.model)
    assert geometry.analyze(run_dir) == geometry.analyze(run_dir, images=images)


@pytest.mark.parametrize(("option", "make", "problem"), [
    ("--report", lambda p: p.mkdir(), "it is a directory, not a file; give a file name"),
    ("--plots", lambda p: p.write_text("x"), "it exists and is not a folder; give a folder"),
])
def test_cli_bad_output_path_exits_2_before_writing(tmp_path, capsys, fake_test_split, option, make,
                                                    problem, make_checkpoint):
    make_checkpoint(tmp_path / "run", [64, 16, 10])
    target = tmp_path / "target"
    make(target)
    assert main(["geometry", str(tmp_path / "run"), option, str(target)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: cannot write {target}: {problem} with {option}\n"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt"]


def test_zero_weight_rows_are_counted_and_left_out(tmp_path, fake_test_split, make_checkpoint):
    def with_zero_row(n, k, gen):
        w = torch.randn(n, k, generator=gen)
        w[0] = 0.0
        return w

    make_checkpoint(tmp_path, [64, 16, 10], latent=with_zero_row)
    assert main(["geometry", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "geometry.json").read_text())
    for entry in report["layers"]:
        assert entry["zero_weight_rows"] == 1
        assert sum(entry["angle_histogram"]["counts"]) == entry["neurons"] - 1
        assert abs(entry["angle_mean_deg"] - geometry.THEORY_ANGLE_DEG) < 5


def test_cli_rejects_too_few_samples(tmp_path, capsys, make_checkpoint):
    make_checkpoint(tmp_path, [64, 16, 10])
    assert main(["geometry", str(tmp_path), "--max-samples", "1"]) == 2
    assert "--max-samples must be at least 2, not 1" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--input-bits", "8"], ["--act-bits", "2"]])
def test_geometry_cli_takes_multi_bit_runs(tmp_path, capsys, option):
    assert main(["train", "--hidden", "8", "--epochs", "1", *option, "--out",
                 str(tmp_path / "r"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["geometry", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r" / "geometry.json").read_text())
    assert [e["name"] for e in report["layers"]] == ["fc0", "fc1"]


@pytest.mark.slow
@pytest.mark.parametrize("options", [{"act_bits": 2}, {"input_bits": 8, "weights": "ternary"}])
def test_conv_run_with_new_kinds_measures_the_exported_activations(tmp_path, options):
    from bnnflow.model import golden
    from bnnflow.model.data import test_split_for
    from bnnflow.model.train import train_and_export

    result = train_and_export(preset="cnv-mnist", dataset="mnist5k", epochs=1, progress=False,
                              out=str(tmp_path / "r"), **options)
    images, _ = test_split_for(result.model)
    images = images[:50]
    inputs = geometry.layer_inputs(load_checkpoint(tmp_path / "r"), images,
                                   geometry.trained_weights(load_checkpoint(tmp_path / "r")))
    expected = golden.run(result.model, result.model.input.encode(images))
    top = (1 << options.get("act_bits", 1)) - 1
    for (_, quantized), a in zip(inputs[1:], expected.activations, strict=True):
        assert np.array_equal(quantized, 2.0 * a - top)


def test_a_ternary_run_is_measured_as_trained_binary_output_included(tmp_path, fake_test_split,
                                                                       make_checkpoint, capsys,
                                                                       monkeypatch):
    import torch

    monkeypatch.setenv("COLUMNS", "160")           # one line per table row

    ckpt = make_checkpoint(tmp_path / "run", [64, 16, 12, 10])
    ckpt["config"]["weights"] = "ternary"
    torch.save(ckpt, tmp_path / "run" / "checkpoint.pt")
    assert main(["geometry", str(tmp_path / "run")]) == 0
    report = json.loads((tmp_path / "run" / "geometry.json").read_text())
    assert report["quantizer"] == "ternary"
    # the output layer of a ternary network stays binary, and is measured so
    assert [e["quantizer"] for e in report["layers"]] == ["ternary", "ternary", "binary"]
    assert "fc2 (binary)" in capsys.readouterr().out
