"""Input encodings: how raw pixels become the first layer's input bits.

Four kinds, each recorded in the artifact's manifest (``input.encoding``) and in the training
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

``{"kind": "pixels", "scale": s, "bits": n}``
    One ``n``-bit element per pixel (``n = 8``: FINN's CNV first layer): ``a = round(pixel /
    s * L)`` clipped to ``0..L``, ``L = 2**n - 1``, halves rounded up. The first layer takes
    ``n``-bit inputs (:func:`~bnnflow.model.conventions.popcount_levels`: ``a`` stands for
    ``2a - L``), so no grey level is thrown away and the input is ``P`` elements, not ``L * P``
    bits. ``K0 = P``.

``{"kind": "pixel_levels", "scale": s, "bits": n, "thresholds": [t_1, ..., t_L]}``
    One ``n``-bit element per pixel as ``pixels``, with the level ``a`` = the number of the
    ``L = 2**n - 1`` non-decreasing thresholds that ``pixel / s`` reaches (``>= t_k``): any
    non-decreasing map from pixels to levels, such as Brevitas CNV's 8-bit input
    ``round(128 * (2 * pixel / 255 - 1))``, which skips the level of 0 (two equal
    thresholds) and clips at 127 (``bnnflow import`` writes it). A new kind rather than a
    key of ``pixels``, so a bnnflow that predates it refuses the file instead of ignoring the
    table. ``K0 = P``.

Every function here is numpy-only; :class:`bnnflow.model.artifact.InputSpec`, training and the
geometry analysis all go through them, so the network, the golden model and the hardware
stimulus binarize identically.
"""

import numpy as np

from . import conventions

__all__ = ["KINDS", "ELEMENT_KINDS", "make_encoding", "level_map", "thresholds_of", "validate",
           "element_bits", "centered", "encode"]

KINDS = ("threshold", "thermometer", "pixels", "pixel_levels")
#: Kinds of one ``n``-bit element per pixel.
ELEMENT_KINDS = ("pixels", "pixel_levels")

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
    if kind in ELEMENT_KINDS:
        bits = encoding.get("bits")
        if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
            raise ValueError(f"{kind} encoding bits must be an integer in 2..8, not {bits!r}")
        if kind == "pixel_levels":
            _check_level_thresholds(encoding.get("thresholds"), (1 << bits) - 1)
        return 1
    ts = encoding.get("thresholds")
    if (not isinstance(ts, list | tuple) or not 2 <= len(ts) <= MAX_LEVELS
            or not all(_number(t) for t in ts)):
        raise ValueError(f"thermometer thresholds must be a list of 2 to {MAX_LEVELS} numbers, "
                         f"not {ts!r}")
    if any(b <= a for a, b in zip(ts, ts[1:], strict=False)):
        raise ValueError(f"thermometer thresholds must be strictly ascending, not {list(ts)}")
    return len(ts)


def _check_level_thresholds(ts, top):
    if (not isinstance(ts, list | tuple) or len(ts) != top
            or not all(_number(t) for t in ts)):
        shown = ts if not isinstance(ts, list | tuple) else f"{len(ts)} values"
        raise ValueError(f"pixel_levels thresholds must be a list of {top} numbers (2**bits - "
                         f"1), not {shown}")
    if any(b < a for a, b in zip(ts, ts[1:], strict=False)):
        i = next(i for i, (a, b) in enumerate(zip(ts, ts[1:], strict=False)) if b < a)
        raise ValueError(f"pixel_levels thresholds must not decrease, but threshold {i + 2} "
                         f"({ts[i + 1]!r}) is below threshold {i + 1} ({ts[i]!r})")


def element_bits(encoding):
    """Bits of one input element: the ``pixels`` and ``pixel_levels`` kinds' ``bits``, else
    1."""
    validate(encoding)
    return int(encoding["bits"]) if encoding["kind"] in ELEMENT_KINDS else 1


def level_map(encoding, images):
    """The ``n``-bit levels ``(B, P)`` (uint8) of raw ``images`` under an element kind."""
    images = np.asarray(images, dtype=np.float64)
    flat = images.reshape(images.shape[0], -1) / float(encoding["scale"])
    top = (1 << int(encoding["bits"])) - 1
    if encoding["kind"] == "pixel_levels":
        # the number of thresholds at or below the value: pixel / s >= t_k
        ts = np.asarray(encoding["thresholds"], dtype=np.float64)
        return np.searchsorted(ts, flat, side="right").astype(np.uint8)
    return np.clip(np.floor(flat * top + 0.5), 0, top).astype(np.uint8)


def centered(encoding, images):
    """Pixels relative to each threshold, ``(B, K0)`` floats whose sign gives the input bits.

    ``images`` is ``(B, *shape)`` or ``(B, P)`` raw pixels; the result lists the ``P`` pixels
    for the first threshold, then for the second, and so on.
    """
    levels = validate(encoding)
    if encoding["kind"] in ELEMENT_KINDS:
        raise ValueError("n-bit pixels have no threshold to center on")
    images = np.asarray(images, dtype=np.float64)
    flat = images.reshape(images.shape[0], -1) / float(encoding["scale"])
    parts = [flat - t for t in thresholds_of(encoding)]
    return parts[0] if levels == 1 else np.concatenate(parts, axis=1)


def encode(encoding, images):
    """Inputs ``(B, K0)`` (uint8) of raw ``images``: bits ``sign_bits(centered(...))``, or for
    the element kinds the ``n``-bit levels (:func:`level_map`)."""
    if validate(encoding) == 1 and encoding["kind"] in ELEMENT_KINDS:
        return level_map(encoding, images)
    return conventions.sign_bits(centered(encoding, images))
