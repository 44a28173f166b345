"""Training checkpoints (bnnflow.model.checkpoint): where they are, what is refused, with
one-line errors naming the file and the fix; the layer kinds they name."""

import numpy as np
import pytest
import torch

from bnnflow.errors import BnnflowError
from bnnflow.model.checkpoint import checkpoint_path, load_checkpoint, split_images


def write_garbage(path, make_checkpoint):
    path.write_bytes(b"not a checkpoint")


def write_wrong_format(path, make_checkpoint):
    torch.save({"format": "something-else", "version": 1}, path)


def write_wrong_version(path, make_checkpoint):
    torch.save({"format": "bnnflow-checkpoint", "version": 99}, path)


def write_mismatched_shapes(path, make_checkpoint):
    make_checkpoint(path.parent, [64, 16, 10])
    ckpt = torch.load(path, weights_only=True)
    ckpt["layers"][1]["latent_weight"] = torch.randn(10, 15)
    torch.save(ckpt, path)


def write_bad_bn(path, make_checkpoint):
    make_checkpoint(path.parent, [64, 16, 10])
    ckpt = torch.load(path, weights_only=True)
    ckpt["layers"][0]["bn"]["running_var"] = torch.ones(3)
    torch.save(ckpt, path)


def write_bad_kind(path, make_checkpoint):
    make_checkpoint(path.parent, [64, 16, 10])
    ckpt = torch.load(path, weights_only=True)
    ckpt["layers"][0]["bn"]["kind"] = "layernorm"
    torch.save(ckpt, path)


def write_list_weights(path, make_checkpoint):
    make_checkpoint(path.parent, [64, 16, 10])
    ckpt = torch.load(path, weights_only=True)
    ckpt["layers"][1]["latent_weight"] = [[0.5] * 16] * 10
    torch.save(ckpt, path)


def write_unknown_layer_kind(path, make_checkpoint):
    make_checkpoint(path.parent, [64, 16, 10])
    ckpt = torch.load(path, weights_only=True)
    ckpt["layers"][1]["kind"] = "conv2d"
    torch.save(ckpt, path)


def write_bad_encoding(path, make_checkpoint):
    make_checkpoint(path.parent, [64, 16, 10], encoding={"kind": "threshold", "scale": None,
                                                        "threshold": 0.5})


@pytest.mark.parametrize(("writer", "problem"), [
    (None, "no training checkpoint here"),
    (write_bad_kind, "fc0.bn.kind must be 'batchnorm1d', not 'layernorm'"),
    (write_list_weights, "fc1.latent_weight is not a tensor"),
    (write_bad_encoding, "config.input_encoding: input encoding scale must be a positive"),
    (write_garbage, "cannot read the checkpoint"),
    (write_wrong_format, "not a bnnflow-checkpoint file"),
    (write_wrong_version, "unsupported checkpoint version 99"),
    (write_mismatched_shapes, "fc1 has 15 inputs but fc0 has 16 outputs"),
    (write_bad_bn, r"fc0.bn.running_var must have shape \(16,\), not \(3,\)"),
    (write_unknown_layer_kind, r"fc1.kind must be one of \[.*'binary_dense'.*\], not 'conv2d'"),
])
def test_bad_checkpoint_is_one_line_error_naming_file_and_fix(tmp_path, writer, problem,
                                                             make_checkpoint):
    path = tmp_path / "checkpoint.pt"
    if writer:
        writer(path, make_checkpoint)
    with pytest.raises(BnnflowError, match=problem) as info:
        load_checkpoint(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert "train first" in message


@pytest.mark.parametrize("given", ["dir", "checkpoint", "artifact"])
def test_checkpoint_path_accepts_run_dir_checkpoint_or_artifact(tmp_path, given):
    arg = {"dir": tmp_path, "checkpoint": tmp_path / "checkpoint.pt",
           "artifact": tmp_path / "model.bnn"}[given]
    assert checkpoint_path(arg) == tmp_path / "checkpoint.pt"


def test_missing_config_key_is_named(tmp_path, make_checkpoint):
    make_checkpoint(tmp_path, [64, 16, 10])
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    del ckpt["config"]["split_seed"]
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    with pytest.raises(BnnflowError, match="malformed checkpoint: config has no 'split_seed'"):
        split_images(load_checkpoint(tmp_path))


def test_layers_are_binary_dense_unless_they_name_their_kind(tmp_path, make_checkpoint):
    make_checkpoint(tmp_path, [12, 5, 3])
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    ckpt["layers"][1]["kind"] = "binary_dense"
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    layers = load_checkpoint(tmp_path).layers
    assert [layer.kind for layer in layers] == ["binary_dense", "binary_dense"]
    # The kind's real-valued forward pass: a dense layer is x @ W.T.
    x = np.arange(24, dtype=np.float64).reshape(2, 12) - 11.5
    assert np.array_equal(layers[0].preactivation(x, layers[0].latent), x @ layers[0].latent.T)


def test_cuts_of_n_bit_activations_come_from_the_saved_state(tmp_path):
    from bnnflow.model.train import train_and_export

    result = train_and_export(hidden=(12, 8), epochs=1, act_bits=2, quantizer="balanced",
                              out=str(tmp_path), progress=False)
    cuts = load_checkpoint(tmp_path).cuts
    assert [c.tolist() for c in cuts] == [act.cuts() for act in result.net.acts]
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    del ckpt["state_dict"]["acts.1.running_cuts"]
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    with pytest.raises(BnnflowError, match=r"checkpoint.pt: malformed checkpoint: no cuts of the "
                                           r"2-bit activation acts.1; train first"):
        load_checkpoint(tmp_path)


def test_binary_activations_have_no_cuts(tmp_path, make_checkpoint):
    make_checkpoint(tmp_path, [12, 5, 3])
    assert load_checkpoint(tmp_path).cuts == ()
