"""The stage list of a convolutional topology: its tuples, its text form, and the map shapes.

A stage is ``("conv", Cout, k)`` or ``("conv", Cout, kh, kw, stride[, pad[, pad_value]])``
(padding ``pad`` on every side with the input code ``pad_value``, 0 unless given),
``("pool", k)`` or ``("pool", k, stride)`` (max-pool; stride ``k`` when not given, windows
overlap for a smaller one), or ``("dense", N)``; conv and pool stages come before the dense
ones. These are the tuples :class:`~bnnflow.model.cnn.BinaryCNN` trains and
:func:`~bnnflow.model.random_net.random_conv_model` draws.

The text form (``bnnflow train --stages``, ``verify-campaign --sizes``) joins stages with ``-``:
``cNkK`` a conv of ``N`` channels and a ``K x K`` kernel, ``cNkKsS`` with stride ``S``, ``cNkKpP``
padded by ``P`` (``cNkKsSpP``; ``...pPvV`` with pad code ``V``), ``pW`` a ``W x W`` max-pool,
``pWsS`` with stride ``S``, ``dN`` a dense layer of ``N`` neurons: ``c16k3s2-c16k3-p2-d64``. This
module needs no torch.
"""

import re

from .conv import conv_out_shape
from .pool import pool_out_shape

__all__ = ["STAGE_FORMS", "check_stages", "conv_geometry", "pool_geometry", "stage_shapes",
           "parse_stages", "stages_text", "is_positive_int"]

#: The text forms, as error messages name them.
STAGE_FORMS = ("cNkK, cNkKsS or cNkKsSpP (conv, stride S, padding P), pW or pWsS (max-pool, "
               "stride S) or dN (dense), with positive N, K, W and S")

_STAGE = re.compile(r"^(?:c(\d+)k(\d+)(?:s(\d+))?(?:p(\d+)(?:v(\d+))?)?|p(\d+)(?:s(\d+))?"
                    r"|d(\d+))$")


def is_positive_int(value):
    """Whether ``value`` is an ``int`` above 0 (a ``bool`` is not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _stage_ok(stage):
    # A conv's pad and pad code may be 0.
    if not stage or not all(is_positive_int(v) for v in stage[1:5 if stage[0] == "conv" else None]):
        return False
    if not all(is_positive_int(v) or v == 0 and not isinstance(v, bool) for v in stage[5:]):
        return False
    lengths = {"conv": (3, 5, 6, 7), "pool": (2, 3), "dense": (2,)}
    return len(stage) in lengths.get(stage[0], ())


def check_stages(stages):
    """The stages as a tuple of tuples; ``ValueError`` naming the first bad one."""
    stages = tuple(tuple(s) for s in stages)
    for i, stage in enumerate(stages):
        if not _stage_ok(stage):
            raise ValueError(f"stage {i} must be ('conv', channels, k), ('conv', channels, kh, "
                             f"kw, stride[, pad[, pad_value]]), ('pool', window[, stride]) or "
                             f"('dense', neurons), not {stage!r}")
    kinds = [s[0] for s in stages]
    if "dense" in kinds and any(k != "dense" for k in kinds[kinds.index("dense"):]):
        raise ValueError("conv and pool stages must come before the dense stages")
    return stages


def conv_geometry(stage):
    """``((kh, kw), stride, pad, pad_value)`` of a conv stage."""
    if len(stage) == 3:
        return (stage[2], stage[2]), 1, 0, 0
    return (stage[2], stage[3]), stage[4], *(list(stage[5:]) + [0, 0])[:2]


def pool_geometry(stage):
    """``(window, stride)`` of a pool stage."""
    return stage[1], stage[2] if len(stage) > 2 else stage[1]


def stage_shapes(in_shape, stages):
    """The channels-last shape after each stage (an int width after dense stages).

    Raises
    ------
    ValueError
        A kernel or pool window larger than the map it receives, or a pool stride larger
        than its window.
    """
    shape, shapes = tuple(in_shape), []
    for i, stage in enumerate(check_stages(stages)):
        try:
            if stage[0] == "dense":
                shape = stage[1]
            elif stage[0] == "conv":
                kernel, stride, pad, _ = conv_geometry(stage)
                shape = conv_out_shape(shape, kernel, stage[1], stride, pad)
            else:
                shape = pool_out_shape(shape, *pool_geometry(stage))
        except ValueError as e:
            raise ValueError(f"stage {i} {stage!r}: {e}") from None
        shapes.append(shape)
    return shapes


def parse_stages(text, whole=None):
    """``"c16k3s2-p2-d64"`` -> ``(("conv", 16, 3, 3, 2), ("pool", 2), ("dense", 64))``.

    ``whole`` is the text the stages came from, for the message (default ``text``).

    Raises
    ------
    ValueError
        A stage that is none of the forms (:data:`STAGE_FORMS`), or stages out of order.
    """
    whole = text if whole is None else whole
    stages = []
    for part in str(text).strip().lower().split("-"):
        m = _STAGE.match(part)
        groups = m.groups() if m else ()
        # Pad (P) and pad code (V) may be 0; every other number is positive.
        if not m or any(g is not None and int(g) < 1 for i, g in enumerate(groups)
                        if i not in (3, 4)):
            raise ValueError(f"stage {part!r} of {whole!r} must be {STAGE_FORMS}")
        conv_n, conv_k, conv_s, conv_p, conv_v, pool, stride, dense = m.groups()
        if conv_n:
            k = int(conv_k)
            tail = [] if conv_s is None and conv_p is None else [k, int(conv_s or 1)]
            tail += [int(conv_p)] if conv_p is not None else []
            tail += [int(conv_v)] if conv_v is not None else []
            stages.append(("conv", int(conv_n), k, *tail))
        elif pool:
            stages.append(("pool", int(pool), *([int(stride)] if stride else [])))
        else:
            stages.append(("dense", int(dense)))
    return check_stages(stages)


def stages_text(stages):
    """The text form of stages (:func:`parse_stages`' inverse; square kernels only):
    ``[["conv", 16, 3], ["pool", 2], ["dense", 128]]`` -> ``c16k3-p2-d128``."""
    parts = []
    for stage in check_stages(stages):
        if stage[0] == "conv":
            (kh, kw), stride, pad, pad_value = conv_geometry(stage)
            if kh != kw:
                raise ValueError(f"the text form has square kernels only, not {kh}x{kw}")
            parts.append(f"c{stage[1]}k{kh}" + (f"s{stride}" if stride != 1 else "")
                         + (f"p{pad}" if pad or len(stage) > 5 else "")
                         + (f"v{pad_value}" if pad_value else ""))
        elif stage[0] == "pool":
            window, stride = pool_geometry(stage)
            parts.append(f"p{window}" + (f"s{stride}" if stride != window else ""))
        else:
            parts.append(f"d{stage[1]}")
    return "-".join(parts)
