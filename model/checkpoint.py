"""Training checkpoints (``RUN_DIR/checkpoint.pt``) reduced to numpy, for the weight geometry.

``bnnflow train`` saves the checkpoint beside ``model.bnn``: the training configuration and,
per layer, the real-valued latent weights and the BatchNorm (or output scale) parameters.
:func:`load_checkpoint` validates it and returns a :class:`Checkpoint`; every error is one
line naming the file and how to get a good one. :func:`split_images` loads the test split the
run was trained against. Each layer has a kind (:data:`bnnflow.model.artifact.LAYER_KINDS`);
checkpoints of version 1 hold ``binary_dense`` layers, the default when a layer names none,
and those of convolutional runs also ``binary_conv2d`` layers (latent weights
``(Cout, kh * kw * Cin)`` in window order, ``batchnorm2d``, ``params`` ``in_shape``,
``kernel``, ``stride`` when not 1, ``pad`` and the padded inputs' value ``pad_fill`` when
padded) and ``maxpool2d`` layers (no weights; ``params`` ``in_shape``, ``window`` and
``stride``).
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BnnflowError, first_line
from . import conventions, encoding
from .artifact import LAYER_KINDS
from .conv import Conv2dLayer, conv_out_shape
from .dense import DenseLayer
from .pool import MaxPool2dLayer, pool_out_shape

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


#: The normalization of a hidden layer, by its kind.
HIDDEN_NORMS = {DenseLayer.kind: "batchnorm1d", Conv2dLayer.kind: "batchnorm2d"}


@dataclass(frozen=True)
class CheckpointLayer:
    """One layer of a checkpoint, as numpy arrays.

    Parameters
    ----------
    name : str
    latent : float64 array ``(N, K)`` or None
        The real-valued latent weights: one row per neuron (a conv layer's output channel,
        over its ``kh * kw * Cin`` window in ``(kh, kw, Cin)`` order); None for a pool layer.
    bn : dict
        ``weight``, ``bias``, ``running_mean``, ``running_var`` (float64 arrays ``(N,)``),
        ``eps`` (float) and ``kind`` (``"batchnorm1d"``, ``"batchnorm2d"`` or
        ``"output_scale"``); empty for a pool layer.
    kind : str
        The layer kind (a key of :data:`bnnflow.model.artifact.LAYER_KINDS`); its
        ``preactivation`` is the layer's real-valued forward pass.
    params : dict
        The shape parameters of a conv (``in_shape``, ``kernel``, ``stride`` when not 1,
        ``pad`` and ``pad_fill`` when padded) or pool (``in_shape``, ``window``, ``stride``)
        layer, as its kind's ``preactivation`` takes them.
    """

    name: str
    latent: np.ndarray | None
    bn: dict
    kind: str = DenseLayer.kind
    params: dict = field(default_factory=dict)

    @property
    def has_weights(self):
        """False for a pool layer."""
        return self.latent is not None

    @property
    def in_width(self):
        """Inputs of the layer: ``K`` for a dense layer, ``H * W * C`` for a map."""
        if self.kind == DenseLayer.kind:
            return int(self.latent.shape[1])
        return int(np.prod(self.params["in_shape"]))

    @property
    def out_width(self):
        """Outputs of the layer: ``N`` for a dense layer, ``Ho * Wo * C`` for a map."""
        p = self.params
        if self.kind == Conv2dLayer.kind:
            shape = conv_out_shape(p["in_shape"], p["kernel"], self.latent.shape[0],
                                   p.get("stride", 1), p.get("pad", 0))
        elif self.kind == MaxPool2dLayer.kind:
            shape = pool_out_shape(p["in_shape"], p["window"], p["stride"])
        else:
            shape = self.latent.shape[:1]
        return int(np.prod(shape))

    @property
    def hidden(self):
        """True if the layer's output goes through ``sign`` into the next layer."""
        return self.kind == MaxPool2dLayer.kind or self.bn.get("kind") == HIDDEN_NORMS.get(
            self.kind)

    def preactivation(self, x, weights):
        """Real-valued pre-activations of inputs ``x`` ``(B, in_width)`` against ``weights``
        (latent or quantized), as the layer's kind computes them
        (:meth:`bnnflow.model.kinds.LayerKind.preactivation`); a pool layer's real max-pool."""
        return LAYER_KINDS[self.kind].preactivation(x, weights, **self.params)

    def rows(self, x):
        """The inputs ``x`` ``(B, in_width)`` as the neurons see them, one row per (image,
        output pixel) in that order: ``x`` itself for a dense layer, the windows
        ``(B * Ho * Wo, kh * kw * Cin)`` for a conv layer."""
        if self.kind == Conv2dLayer.kind:
            p = self.params
            win = conventions.windows(x, p["in_shape"], p["kernel"], p.get("stride", 1),
                                      p.get("pad", 0), p.get("pad_fill", 0.0))
            return win.reshape(-1, win.shape[-1])
        return np.asarray(x)

    def batchnorm(self, z):
        """The layer's BatchNorm (eval mode) applied to pre-activations ``z`` ``(B, P * N)``
        (``P`` output pixels, channels-last; ``P = 1`` for a dense layer)."""
        bn = self.bn
        zz = np.asarray(z).reshape(len(z), -1, len(bn["weight"]))
        out = ((zz - bn["running_mean"]) / np.sqrt(bn["running_var"] + bn["eps"])
               * bn["weight"] + bn["bias"])
        return out.reshape(len(z), -1)


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
    cuts : tuple
        Per hidden layer with weights, in order, the cuts of its ``n``-bit activation
        (:meth:`bnnflow.model.layers.LevelActivation.cuts`, the level rises at each); empty for
        binary activations (``sign``).
    """

    path: Path
    config: dict
    layers: list
    cuts: tuple = ()


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
        first = first_line(e)
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
    return Checkpoint(path, config, layers, _activation_cuts(path, raw, config, layers))


def _activation_cuts(path, raw, config, layers):
    """The running cuts of each ``n``-bit activation from the saved state (``acts.i.
    running_cuts``, ``i`` the layer's position: an MLP's hidden index, a CNN's block index);
    ``()`` for binary activations."""
    bits = config.get("act_bits", 1)
    if bits == 1:
        return ()
    state = raw.get("state_dict")
    cuts = []
    for i, layer in enumerate(layers):
        if not (layer.hidden and layer.has_weights):
            continue
        value = state.get(f"acts.{i}.running_cuts") if isinstance(state, dict) else None
        if value is None:
            raise _fail(path, f"malformed checkpoint: no cuts of the {bits}-bit activation "
                              f"acts.{i}")
        c = _array(path, value, f"acts.{i}.running_cuts")
        if c.shape != ((1 << bits) - 1,):
            raise _fail(path, f"malformed checkpoint: acts.{i}.running_cuts has shape "
                              f"{c.shape}, expected ({(1 << bits) - 1},)")
        cuts.append(c)
    return tuple(cuts)


def _in_width(path, name, kind, params, latent):
    """A layer's input width from its kind, weights and shape parameters (which are checked
    and normalized in place)."""
    if kind == DenseLayer.kind:
        return latent.shape[1]
    if not isinstance(params, dict):
        raise _fail(path, f"malformed checkpoint: {name} ({kind}) needs a 'params' dict")
    try:
        in_shape = tuple(int(v) for v in params["in_shape"])
        if len(in_shape) != 3:
            raise ValueError(f"in_shape must be (H, W, C), not {in_shape}")
        if kind == Conv2dLayer.kind:
            kernel = tuple(int(v) for v in params["kernel"])
            if len(kernel) != 2:
                raise ValueError(f"kernel must be (kh, kw), not {kernel}")
            fan_in = kernel[0] * kernel[1] * in_shape[2]
            if latent.shape[1] != fan_in:
                raise ValueError(f"latent_weight must be (Cout, {fan_in}) for a "
                                 f"{kernel[0]}x{kernel[1]} kernel over {in_shape[2]} channels, "
                                 f"not {latent.shape}")
            stride, pad = params.get("stride", 1), params.get("pad", 0)
            if isinstance(stride, bool) or not isinstance(stride, int):
                raise ValueError(f"conv stride must be a positive integer, not {stride!r}")
            conv_out_shape(in_shape, kernel, latent.shape[0], stride, pad)
            clean = {"in_shape": in_shape, "kernel": kernel,
                     **({"stride": stride} if stride != 1 else {}),
                     **({"pad": pad, "pad_fill": float(params.get("pad_fill", -1.0))}
                        if pad else {})}
        else:
            window, stride = int(params["window"]), int(params["stride"])
            pool_out_shape(in_shape, window, stride)
            clean = {"in_shape": in_shape, "window": window, "stride": stride}
    except KeyError as e:
        raise _fail(path, f"malformed checkpoint: {name}.params has no {e}") from e
    except (TypeError, ValueError) as e:
        raise _fail(path, f"malformed checkpoint: {name}.params: {e}") from e
    params.clear()
    params.update(clean)
    return int(np.prod(in_shape))


def _layer(path, i, entry, previous, hidden):
    """Layer ``i`` of a checkpoint, checked against the layer before it."""
    if not isinstance(entry, dict):
        raise _fail(path, f"malformed checkpoint: layer {i} is not a dict")
    name = str(entry.get("name", f"layer{i}"))
    kind = entry.get("kind", DenseLayer.kind)
    if not isinstance(kind, str) or kind not in LAYER_KINDS:
        raise _fail(path, f"malformed checkpoint: {name}.kind must be one of "
                          f"{sorted(LAYER_KINDS)}, not {kind!r}")
    params = dict(entry["params"]) if isinstance(entry.get("params"), dict) else entry.get(
        "params")
    if kind == MaxPool2dLayer.kind:
        latent, bn = None, {}
        if not hidden:
            raise _fail(path, f"malformed checkpoint: {name} is a pool layer but the last one")
    else:
        if not isinstance(entry.get("bn"), dict):
            raise _fail(path, f"malformed checkpoint: layer {i} needs 'latent_weight' and 'bn'")
        latent = _array(path, entry.get("latent_weight"), f"{name}.latent_weight")
        if latent.ndim != 2:
            raise _fail(path, f"malformed checkpoint: {name}.latent_weight must be (N, K), "
                              f"not {latent.shape}")
    k = _in_width(path, name, kind, params, latent)
    if previous is not None and k != previous.out_width:
        raise _fail(path, f"malformed checkpoint: {name} has {k} inputs but "
                          f"{previous.name} has {previous.out_width} outputs")
    if latent is not None:
        bn = _norm(path, name, entry["bn"], latent.shape[0],
                   HIDDEN_NORMS[kind] if hidden else None)
    return CheckpointLayer(name, latent, bn, kind, params or {})


def _norm(path, name, bn_raw, n, hidden_kind):
    """The checked ``bn`` dict of a layer with ``n`` neurons (``hidden_kind``: the
    normalization a hidden layer of its kind has; None for the output layer)."""
    bn = {"kind": bn_raw.get("kind"), "eps": bn_raw.get("eps")}
    if hidden_kind is None:
        # The output layer's normalization never changes the class and is not needed here.
        return bn
    # Hidden layers: their BatchNorm gives the continuous activations.
    if bn["kind"] != hidden_kind:
        raise _fail(path, f"malformed checkpoint: {name}.bn.kind must be "
                          f"{hidden_kind!r}, not {bn['kind']!r}")
    if not isinstance(bn["eps"], int | float):
        raise _fail(path, f"malformed checkpoint: {name}.bn.eps must be a number")
    for key in ("weight", "bias", "running_mean", "running_var"):
        value = _array(path, bn_raw.get(key), f"{name}.bn.{key}")
        if value.shape != (n,):
            raise _fail(path, f"malformed checkpoint: {name}.bn.{key} must have "
                              f"shape ({n},), not {value.shape}")
        bn[key] = value
    return bn


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
