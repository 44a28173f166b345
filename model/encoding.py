"""Input encodings: how raw pixels become the first layer's input bits.

Two kinds, both recorded in the artifact's manifest (``input.encoding``) and in the training
checkpoint (``config.input_encoding``):

``{"kind": "threshold", "scale": s, "threshold": t}``
    One bit per pixel: bit 1 (+1) where ``pixel / s >= t``, else 0 (-1). A pixel exactly at the
    threshold is +1, as ``sign(0) = +1``. ``K0`` = number of pixels.

``{"kind": "thermometer", "scale": s, "thresholds": [t_0, t_1, ...]}``
    ``L`` bits per pixel, each a binarized copy of the image at one threshold (ascending):
    bit ``l * P + i`` is 1 where ``pixel_i / s >= t_l`` (``P`` pixels, level-major order), so a
    brighter pixel turns on more of its bits. ``K0 = L * P``. This keeps grey levels that a
    single threshold throws away (8x8 digits have 17 of them) while every input is still one
    binary value; the hardware sees ``K0`` input bits like any other.

Every function here is numpy-only; :class:`bnnflow.model.artifact.InputSpec`, training and the
geometry analysis all go through them, so the network, the golden model and the hardware
stimulus binarize identically.
"""

import numpy as np

from . import conventions

__all__ = ["KINDS", "make_encoding", "thresholds_of", "validate", "centered", "encode"]

KINDS = ("threshold", "thermometer")

#: Most levels a thermometer code may have.
MAX_LEVELS = 16


def make_encoding(scale, thresholds):
    """The encoding dict for pixel full scale ``scale`` and one or more ``thresholds``.

    One threshold gives the ``"threshold"`` kind (one bit per pixel), several the
    ``"thermometer"`` kind.
    """
    if isinstance(thresholds, int | float):
        thresholds = (thresholds,)
    thresholds = [float(t) for t in thresholds]
    if len(thresholds) == 1:
        return {"kind": "threshold", "scale": float(scale), "threshold": thresholds[0]}
    return {"kind": "thermometer", "scale": float(scale), "thresholds": thresholds}


def thresholds_of(encoding):
    """The list of thresholds of a (valid) encoding, one entry per bit of a pixel."""
    if encoding["kind"] == "threshold":
        return [float(encoding["threshold"])]
    return [float(t) for t in encoding["thresholds"]]


def _number(value):
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def validate(encoding):
    """Check an encoding dict; return the number of bits per pixel.

    Raises
    ------
    ValueError
        Saying what was expected and what was given.
    """
    if not isinstance(encoding, dict):
        raise ValueError(f"input encoding must be a dict, not {encoding!r}")
    kind = encoding.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown input encoding {kind!r} (this bnnflow knows "
                         f"{', '.join(KINDS)}); upgrade bnnflow")
    scale = encoding.get("scale")
    if not _number(scale) or scale <= 0:
        raise ValueError(f"input encoding scale must be a positive number, not {scale!r}")
    if kind == "threshold":
        t = encoding.get("threshold")
        if not _number(t):
            raise ValueError(f"input encoding threshold must be a number, not {t!r}")
        return 1
    ts = encoding.get("thresholds")
    if (not isinstance(ts, list | tuple) or not 2 <= len(ts) <= MAX_LEVELS
            or not all(_number(t) for t in ts)):
        raise ValueError(f"thermometer thresholds must be a list of 2 to {MAX_LEVELS} numbers, "
                         f"not {ts!r}")
    if any(b <= a for a, b in zip(ts, ts[1:], strict=False)):
        raise ValueError(f"thermometer thresholds must be strictly ascending, not {list(ts)}")
    return len(ts)


def centered(encoding, images):
    """Pixels relative to each threshold, ``(B, K0)`` floats whose sign gives the input bits.

    ``images`` is ``(B, *shape)`` or ``(B, P)`` raw pixels; the result lists the ``P`` pixels
    for the first threshold, then for the second, and so on.
    """
    levels = validate(encoding)
    images = np.asarray(images, dtype=np.float64)
    flat = images.reshape(images.shape[0], -1) / float(encoding["scale"])
    parts = [flat - t for t in thresholds_of(encoding)]
    return parts[0] if levels == 1 else np.concatenate(parts, axis=1)


def encode(encoding, images):
    """Input bits ``(B, K0)`` (uint8 0/1) of raw ``images``: ``sign_bits(centered(...))``."""
    return conventions.sign_bits(centered(encoding, images))
