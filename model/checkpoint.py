"""Training checkpoints (``RUN_DIR/checkpoint.pt``) reduced to numpy, for the weight geometry.

``bnnflow train`` saves the checkpoint beside ``model.bnn``: the training configuration and,
per layer, the real-valued latent weights and the BatchNorm (or output scale) parameters.
:func:`load_checkpoint` validates it and returns a :class:`Checkpoint`; every error is one
line naming the file and how to get a good one. :func:`split_images` loads the test split the
run was trained against. Each layer has a kind (:data:`bnnflow.model.artifact.LAYER_KINDS`);
checkpoints of version 1 hold ``binary_dense`` layers, the default when a layer names none.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BnnflowError
from . import encoding
from .artifact import LAYER_KINDS
from .dense import DenseLayer

__all__ = [
    "CHECKPOINT_NAME",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSIONS",
    "Checkpoint",
    "CheckpointLayer",
    "checkpoint_path",
    "load_checkpoint",
    "split_images",
]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "bnnflow-checkpoint"
CHECKPOINT_VERSIONS = (1,)


@dataclass(frozen=True)
class CheckpointLayer:
    """One layer of a checkpoint, as numpy arrays.

    Parameters
    ----------
    name : str
    latent : float64 array ``(N, K)``
        The real-valued latent weights.
    bn : dict
        ``weight``, ``bias``, ``running_mean``, ``running_var`` (float64 arrays ``(N,)``),
        ``eps`` (float) and ``kind`` (``"batchnorm1d"`` or ``"output_scale"``).
    kind : str
        The layer kind (a key of :data:`bnnflow.model.artifact.LAYER_KINDS`); its
        ``preactivation`` is the layer's real-valued forward pass.
    """

    name: str
    latent: np.ndarray
    bn: dict
    kind: str = DenseLayer.kind

    def preactivation(self, x, weights):
        """Real-valued pre-activations of inputs ``x`` against ``weights`` (latent or
        quantized), as the layer's kind computes them
        (:meth:`bnnflow.model.kinds.LayerKind.preactivation`)."""
        return LAYER_KINDS[self.kind].preactivation(x, weights)

    def batchnorm(self, z):
        """The layer's BatchNorm (eval mode) applied to pre-activations ``z`` ``(B, N)``."""
        bn = self.bn
        return ((z - bn["running_mean"]) / np.sqrt(bn["running_var"] + bn["eps"])
                * bn["weight"] + bn["bias"])


@dataclass(frozen=True)
class Checkpoint:
    """A training checkpoint reduced to what the geometry needs.

    Parameters
    ----------
    path : Path
    config : dict
        The training configuration (``dataset``, ``input_encoding``, ...).
    layers : list of :class:`CheckpointLayer`
        In order; the output layer last.
    """

    path: Path
    config: dict
    layers: list


def checkpoint_path(run_dir):
    """The checkpoint of a run: ``RUN_DIR/checkpoint.pt``.

    ``run_dir`` may also be the checkpoint file itself, or the ``.bnn`` artifact beside it.
    """
    path = Path(run_dir)
    if path.suffix == ".pt" and not path.is_dir():
        return path
    if path.suffix == ".bnn" and not path.is_dir():
        return path.parent / CHECKPOINT_NAME
    return path / CHECKPOINT_NAME


def _fail(path, problem):
    return BnnflowError(f"{path}: {problem}; train first with 'bnnflow train --out "
                        f"{path.parent}' (it saves {CHECKPOINT_NAME} beside model.bnn)")


def _array(path, value, what):
    import torch

    if not isinstance(value, torch.Tensor):
        raise _fail(path, f"malformed checkpoint: {what} is not a tensor")
    return value.detach().to("cpu", torch.float64).numpy()


def load_checkpoint(run_dir):
    """Load and validate ``RUN_DIR/checkpoint.pt``.

    Raises
    ------
    BnnflowError
        One line naming the file when it is missing, unreadable or not a bnnflow checkpoint
        of a supported version with consistent layer shapes.
    """
    import torch

    path = checkpoint_path(run_dir)
    if not path.is_file():
        raise _fail(path, "no training checkpoint here")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for a bad file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise _fail(path, f"cannot read the checkpoint ({first})") from e
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise _fail(path, f"not a {CHECKPOINT_FORMAT} file")
    if raw.get("version") not in CHECKPOINT_VERSIONS:
        raise _fail(path, f"unsupported checkpoint version {raw.get('version')!r} "
                          f"(this bnnflow reads {list(CHECKPOINT_VERSIONS)})")
    config = raw.get("config")
    if not isinstance(config, dict):
        raise _fail(path, "malformed checkpoint: no config dict")
    try:
        encoding.validate(config.get("input_encoding"))
    except ValueError as e:
        raise _fail(path, f"malformed checkpoint: config.input_encoding: {e}") from e
    raw_layers = raw.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        raise _fail(path, "malformed checkpoint: no layers")
    layers = []
    for i, entry in enumerate(raw_layers):
        previous = layers[-1] if layers else None
        layers.append(_layer(path, i, entry, previous, hidden=i < len(raw_layers) - 1))
    return Checkpoint(path, config, layers)


def _layer(path, i, entry, previous, hidden):
    """Layer ``i`` of a checkpoint, checked against the layer before it."""
    if not isinstance(entry, dict) or not isinstance(entry.get("bn"), dict):
        raise _fail(path, f"malformed checkpoint: layer {i} needs 'latent_weight' and 'bn'")
    name = str(entry.get("name", f"layer{i}"))
    kind = entry.get("kind", DenseLayer.kind)
    if not isinstance(kind, str) or kind not in LAYER_KINDS:
        raise _fail(path, f"malformed checkpoint: {name}.kind must be one of "
                          f"{sorted(LAYER_KINDS)}, not {kind!r}")
    latent = _array(path, entry.get("latent_weight"), f"{name}.latent_weight")
    if latent.ndim != 2:
        raise _fail(path, f"malformed checkpoint: {name}.latent_weight must be (N, K), "
                          f"not {latent.shape}")
    n, k = latent.shape
    if previous is not None and k != previous.latent.shape[0]:
        raise _fail(path, f"malformed checkpoint: {name} has {k} inputs but "
                          f"{previous.name} has {previous.latent.shape[0]} outputs")
    bn_raw = entry["bn"]
    bn = {"kind": bn_raw.get("kind"), "eps": bn_raw.get("eps")}
    if hidden:
        # Hidden layers: their BatchNorm gives the continuous activations. The output
        # layer's normalization never changes the class and is not needed here.
        if bn["kind"] != "batchnorm1d":
            raise _fail(path, f"malformed checkpoint: {name}.bn.kind must be "
                              f"'batchnorm1d', not {bn['kind']!r}")
        if not isinstance(bn["eps"], int | float):
            raise _fail(path, f"malformed checkpoint: {name}.bn.eps must be a number")
        for key in ("weight", "bias", "running_mean", "running_var"):
            value = _array(path, bn_raw.get(key), f"{name}.bn.{key}")
            if value.shape != (n,):
                raise _fail(path, f"malformed checkpoint: {name}.bn.{key} must have "
                                  f"shape ({n},), not {value.shape}")
            bn[key] = value
    return CheckpointLayer(name, latent, bn, kind)


def split_images(checkpoint):
    """The raw test images of the split recorded in the checkpoint's configuration."""
    from .data import load_dataset

    config = checkpoint.config
    try:
        dataset = load_dataset(config["dataset"], data_dir=config["data_dir"],
                               split_seed=config["split_seed"],
                               test_fraction=config["test_fraction"])
    except KeyError as e:
        raise _fail(checkpoint.path, f"malformed checkpoint: config has no {e}") from e
    return dataset.x_test
