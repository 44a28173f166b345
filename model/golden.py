"""The golden model: the artifact run in numpy, bit-exactly as the hardware must.

Every layer runs its kind's forward step (:meth:`bnnflow.model.kinds.LayerKind.forward`), which
follows :mod:`bnnflow.model.conventions` and nothing else, so any disagreement between hardware
and this model is a hardware (or export) bug.
"""

from dataclasses import dataclass

import numpy as np

from . import conventions

__all__ = ["GoldenResult", "run", "classify", "run_images"]


@dataclass(frozen=True)
class GoldenResult:
    """Everything the golden model computes for a batch.

    Attributes
    ----------
    activations : list of uint8 arrays ``(B, N_i)``
        Output bits of every hidden layer, in order (empty for a one-layer network).
    layer_popcounts : list of int64 arrays ``(B, N_i)``
        Popcounts of every layer, the last one included (the integer values each layer kind's
        step computes its outputs from).
    popcounts : int64 array ``(B, C)``
        The last layer's popcounts (the network's scores).
    classes : int64 array ``(B,)``
        ``argmax`` of ``popcounts``, the lowest index on ties.
    """

    activations: list
    layer_popcounts: list
    popcounts: np.ndarray
    classes: np.ndarray

    def layer_outputs(self):
        """Per-layer outputs as the hardware emits them: bits, then the final popcounts."""
        return [*self.activations, self.popcounts]


def run(model, x_bits):
    """Run ``model`` on input bits ``(B, K0)`` (or one vector ``(K0,)``); 8-bit levels for a
    model whose input has 8-bit elements."""
    x = np.asarray(x_bits)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != model.input.width:
        raise ValueError(f"input bits must have shape (B, {model.input.width}), "
                         f"not {tuple(np.shape(x_bits))}")
    top = (1 << model.input.bits) - 1
    if x.size and (np.any(x > top) or np.any(x < 0)):
        raise ValueError("input bits must be 0 or 1" if top == 1 else
                         f"{model.input.bits}-bit inputs must lie in 0..{top}")
    x = x.astype(np.uint8)
    activations, popcounts = [], []
    for layer in model.layers:
        # Each layer kind's own step (bnnflow.model.kinds.LayerKind.forward).
        x, counts = layer.forward(x)
        popcounts.append(counts)
        if layer.is_output:
            break
        activations.append(x)
    final = popcounts[-1]
    return GoldenResult(activations=activations, layer_popcounts=popcounts, popcounts=final,
                        classes=conventions.argmax_lowest(final))


def classify(model, x_bits):
    """Classes for input bits ``(B, K0)``."""
    return run(model, x_bits).classes


def run_images(model, images):
    """Encode raw images with the model's input encoding, then :func:`run`."""
    return run(model, model.input.encode(images))
