"""The arithmetic conventions of bnnflow, written down once.

Every stage (training export, golden model, hardware generators, simulators) follows these
rules; the functions here are the single numpy reference for them and are tested in
``tests/model/test_conventions.py``.

* **Encoding.** Bit 1 encodes +1, bit 0 encodes -1.
* **Sign.** ``sign(0) = +1``: a value of exactly zero becomes bit 1.
* **Dot product.** For ``K`` inputs, ``dot = 2 * popcount(XNOR(x, w)) - K``.
* **Threshold.** A neuron fires (outputs bit 1) when its popcount is ``>=`` its integer
  threshold ``T``. ``T <= 0`` always fires and ``T > K`` never fires; stored thresholds are
  clamped to ``[0, K + 1]``. A negative BatchNorm scale is handled at export by flipping that
  neuron's weights, never by another comparison.
* **Ternary weights** (``ternary_dense``): a weight ``w`` in ``{-1, 0, +1}`` is stored as a
  sign bit ``s`` and a mask bit ``z``: ``z = 0`` is ``w = 0`` (and ``s = 0``, the one stored
  form), ``z = 1`` is ``w = +1`` for ``s = 1`` and ``-1`` for ``s = 0``. A neuron's *live*
  popcount is ``p = popcount(XNOR(x, s) AND z)`` (:func:`popcount_xnor_masked`); with
  ``m = popcount(z)`` live weights, ``dot = 2 * p - m`` (:func:`ternary_dot_from_popcount`).
  It fires when ``p >= T``, with ``T`` clamped to ``[0, m + 1]``; a negative BatchNorm scale
  flips ``s`` where ``z = 1``. Ternary layers are hidden layers: the output layer stays
  ``binary_dense``, whose popcounts order the classes as their dot products do (neurons with
  different ``m`` would not).
* **Multi-bit activations** (``n`` bits, ``L = 2**n - 1``): a neuron with ``L`` sorted
  thresholds outputs the number of thresholds its popcount reaches, ``a`` in ``0..L``
  (:func:`fire`), which stands for the odd integer ``v = 2a - L`` (``n = 1``: ``a = 1`` is
  ``+1``, ``a = 0`` is ``-1``, the bit encoding above). A dense layer whose ``K`` inputs have
  ``n`` bits (``in_bits``) counts ``p = sum_j (a_j if w_j = 1 else L - a_j)``, the ``n``-bit
  XNOR of ``a_j`` with ``w_j`` repeated, summed as numbers (:func:`popcount_levels`); then
  ``dot = sum_j (+-1) * v_j = 2p - L*K`` and thresholds lie in ``[0, L*K + 1]``. Flipping a
  neuron's weights maps ``p`` to ``L*K - p``, as for bits. Training quantizes a BatchNorm
  output ``y`` to ``a = sum_k [y >= (2k - 1 - L) / L]`` for ``k = 1..L`` (``n = 1``: ``[y >= 0]``,
  the sign rule), so the export's thresholds on ``p`` are exact. Imported unsigned levels
  (Brevitas' ``QuantReLU``, ``s * a``) and signed ones (``s * (a + q_min)``, ``q_min =
  -2**(n-1)``, or ``+ 1`` with narrow range from 3 bits on) are these levels with an offset,
  ``(s / 2) * (v + d)`` for ``d = L + 2 q_min``: ``L``, ``-1`` or ``+1``:
  the importer folds ``d * sum w`` into the next layer's thresholds, or for the output layer
  into constant neurons (:mod:`bnnflow.model.qonnx_offset`); no new rule.
* **Output.** The last layer has no threshold and outputs popcounts; the class is the argmax
  over popcounts, the lowest index on ties.
* **Feature maps** are channels-last: element ``(r, c, ch)`` of an ``H x W x C`` map is element
  ``(r * W + c) * C + ch`` of the flattened vector (:func:`map_index`). A stream carries one
  pixel (``C`` elements) per transfer, rows top to bottom, columns left to right. Dense layers
  after convolutions read this flattened vector as it is.
* **Convolution** (``binary_conv2d``): stride ``s`` (1 unless given), no padding ("valid"), so
  an ``H x W x Cin`` map and a ``kh x kw`` kernel give ``((H - kh) // s + 1) x ((W - kw) // s +
  1) x Cout``; output pixel ``(i, j)`` reads the window whose top left input is ``(i s, j s)``,
  and rows or columns past the last whole window are not read. Each output pixel
  is ``Cout`` binary neurons over the window of ``kh * kw * Cin`` inputs flattened in
  ``(kh, kw, Cin)`` order (:func:`windows`), the order a sliding-window unit emits it; the
  weights are ``(Cout, kh * kw * Cin)`` bits in the same order. Popcount and threshold as for
  any neuron. ``ternary_conv2d`` and conv layers with ``n``-bit inputs (``in_bits``: 8-bit
  pixels into the first conv) add no rule: each output channel is a ternary neuron (live
  popcount, thresholds in ``[0, L*m + 1]``) or an ``n``-bit-input neuron
  (:func:`popcount_levels`) over its window. A pixel of ``n``-bit elements carries element
  ``c`` at bits ``[c * n, (c + 1) * n)``, so a window of such pixels is ``(kh, kw, Cin)``
  elements of ``n`` bits each.
* **Padding** (``pad = p``, ``1 <= p < min(kh, kw)``; 0 unless given): the conv reads its map
  bordered by ``p`` rows above and below and ``p`` columns left and right whose every element
  is the input code ``pad_value`` (0 unless given): a bit (0 is -1, 1 is +1), or an ``n``-bit
  element ``a`` standing for ``2a - L`` (8-bit pixels: the pixel value ``a``). So a padded
  position is an ordinary input with a fixed value, the popcount and thresholds stay those of
  the window's ``kh * kw * Cin`` inputs, and ``H x W`` becomes ``((H + 2p - kh) // s + 1) x
  ((W + 2p - kw) // s + 1)``. A zero between -1 and +1 ("zero padding" of a +-1 map) is not
  an input code; bnnflow's own training pads with code 0 (a background bit, a black pixel, the
  lowest level).
* **Max-pool** (``maxpool2d``) acts on binary activations after the threshold: the OR of the
  window's bits (bit 1 = +1 is the maximum), ``k x k`` windows with stride ``s`` and no
  padding, ``(H - k) // s + 1`` outputs per axis (:func:`maxpool_or`). On ``n``-bit
  activations it is the largest level of the window: ``v = 2a - L`` grows with ``a``, so the
  maximum value is the maximum level (the same function).

Bit order: element ``i`` of a vector is bit ``i`` (LSB first). Packed arrays use
``np.packbits(..., bitorder="little")`` along the last axis, so element ``i`` is bit ``i % 8``
of byte ``i // 8``. In hardware, element ``i`` is bit ``i`` of the stream payload.
"""

import numpy as np

__all__ = [
    "BITORDER",
    "sign_bits",
    "bits_to_pm1",
    "pm1_to_bits",
    "pack_bits",
    "unpack_bits",
    "pack_int",
    "popcount_xnor",
    "popcount_xnor_masked",
    "popcount_levels",
    "ternary_dot_from_popcount",
    "ternary_from_real",
    "dot_from_popcount",
    "popcount_from_dot",
    "fire",
    "argmax_lowest",
    "map_index",
    "windows",
    "maxpool_or",
]

#: Bit order used for every packed array (artifact, golden model, hardware payloads).
BITORDER = "little"


def sign_bits(values):
    """Binarize real values to bits: 1 where ``value >= 0`` (so ``sign(0) = +1``), else 0."""
    return (np.asarray(values) >= 0).astype(np.uint8)


def bits_to_pm1(bits):
    """Map bits to +-1 integers: 1 -> +1, 0 -> -1."""
    return np.asarray(bits).astype(np.int64) * 2 - 1


def pm1_to_bits(values):
    """Map +-1 values to bits; anything other than +-1 is a ``ValueError``."""
    values = np.asarray(values)
    if not np.all((values == 1) | (values == -1)):
        raise ValueError("values must be +1 or -1 only")
    return (values > 0).astype(np.uint8)


def pack_bits(bits):
    """Pack a ``(..., K)`` array of 0/1 into ``(..., ceil(K / 8))`` bytes, LSB first."""
    return np.packbits(np.asarray(bits, dtype=np.uint8), axis=-1, bitorder=BITORDER)


def unpack_bits(packed, count):
    """Inverse of :func:`pack_bits` for vectors of ``count`` elements."""
    return np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=-1, count=count,
                         bitorder=BITORDER)


def pack_int(values, width=1):
    """A vector as one integer: element ``i`` in bits ``[i * width, (i + 1) * width)``.

    With ``width=1`` (the default) ``values`` are bits and the result is a stream payload
    (element ``i`` is bit ``i``); wider fields pack e.g. the final popcounts as the output
    layout and the debug taps lay them out.

    Raises
    ------
    ValueError
        A value is negative or does not fit in ``width`` bits.
    """
    values = np.asarray(values).reshape(-1)
    if values.size and (values.min() < 0 or values.max() >> width):
        raise ValueError(f"values must fit in {width} unsigned bit(s)")
    if width == 1:
        # One vector of thousands of bits per image: packbits instead of a Python loop.
        return int.from_bytes(pack_bits(values).tobytes(), "little")
    value = 0
    for i, v in enumerate(values.tolist()):
        value |= v << (i * width)
    return value


def popcount_xnor(x_bits, w_bits):
    """Popcounts of ``XNOR(x, w)`` for a batch of inputs against every neuron.

    Parameters
    ----------
    x_bits : array of 0/1, shape ``(B, K)``
    w_bits : array of 0/1, shape ``(N, K)``

    Returns
    -------
    int64 array of shape ``(B, N)``: the number of positions where input and weight agree.
    """
    x_bits = np.asarray(x_bits, dtype=np.uint8)
    w_bits = np.asarray(w_bits, dtype=np.uint8)
    if x_bits.ndim != 2 or w_bits.ndim != 2 or x_bits.shape[1] != w_bits.shape[1]:
        raise ValueError(
            f"inputs must be (B, K) and weights (N, K) with the same K, "
            f"not {x_bits.shape} and {w_bits.shape}")
    k = x_bits.shape[1]
    xp = pack_bits(x_bits)
    wp = pack_bits(w_bits)
    # XOR counts disagreements; padding bits are zero in both, so they never disagree.
    disagree = np.bitwise_count(xp[:, None, :] ^ wp[None, :, :]).sum(axis=-1, dtype=np.int64)
    return k - disagree


def popcount_levels(levels, w_bits, bits, mask=None):
    """``p = sum_j (a_j if w_j else L - a_j)`` for ``n``-bit inputs ``a`` (``L = 2**n - 1``).

    ``levels`` is ``(B, K)`` of integers in ``0..L``, ``w_bits`` ``(N, K)`` of 0/1; returns
    ``(B, N)`` int64. With ``bits = 1`` this is :func:`popcount_xnor`. With a ``mask``
    ``(N, K)`` (ternary weights) only the positions where it is 1 count.
    """
    a = np.asarray(levels, dtype=np.int64)
    w = np.asarray(w_bits, dtype=np.int64)
    top = (1 << int(bits)) - 1
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[1]:
        raise ValueError(f"inputs must be (B, K) and weights (N, K) with the same K, "
                         f"not {a.shape} and {w.shape}")
    if a.size and (a.min() < 0 or a.max() > top):
        raise ValueError(f"{bits}-bit inputs must lie in 0..{top}")
    z = np.ones_like(w) if mask is None else np.asarray(mask, dtype=np.int64)
    if z.shape != w.shape:
        raise ValueError(f"mask must have the weights' shape {w.shape}, not {z.shape}")
    return a @ (w * z).T + (top - a) @ ((1 - w) * z).T


def popcount_xnor_masked(x_bits, w_bits, mask, bits=1):
    """Live popcounts ``popcount(XNOR(x, s) AND z)`` of ternary neurons (``(B, N)`` int64).

    ``x_bits`` is ``(B, K)``, ``w_bits`` (signs ``s``) and ``mask`` (``z``) are ``(N, K)``
    of 0/1. Where ``z = 0`` the weight is 0 and the position never counts. With ``bits = n``
    the inputs are ``n``-bit levels: ``p = sum_{z_j = 1} (a_j if s_j else L - a_j)``, and
    ``dot = 2p - L*m`` (:func:`popcount_levels` with the mask).
    """
    if bits != 1:
        return popcount_levels(x_bits, w_bits, bits, mask)
    mask = np.asarray(mask, dtype=np.uint8)
    w_bits = np.asarray(w_bits, dtype=np.uint8)
    if mask.shape != w_bits.shape:
        raise ValueError(f"mask must have the weights' shape {w_bits.shape}, not {mask.shape}")
    x_bits = np.asarray(x_bits, dtype=np.uint8)
    # XNOR(x, s) AND z = agreements among live positions = live - disagreements among them.
    if x_bits.ndim != 2 or w_bits.ndim != 2 or x_bits.shape[1] != w_bits.shape[1]:
        raise ValueError(f"inputs must be (B, K) and weights (N, K) with the same K, "
                         f"not {x_bits.shape} and {w_bits.shape}")
    live = mask.sum(axis=1, dtype=np.int64)
    xp, wp, zp = pack_bits(x_bits), pack_bits(w_bits), pack_bits(mask)
    disagree = np.bitwise_count((xp[:, None, :] ^ wp[None, :, :]) & zp[None, :, :])
    return live[None, :] - disagree.sum(axis=-1, dtype=np.int64)


def ternary_dot_from_popcount(popcount, live):
    """``dot = 2 * p - m``: the dot product of ``+-1`` inputs with ternary weights from the
    live popcount ``p`` and the neuron's number of live (non-zero) weights ``m``."""
    return 2 * np.asarray(popcount, dtype=np.int64) - np.asarray(live, dtype=np.int64)


def ternary_from_real(w, threshold):
    """``(signs, mask)`` of real weights ``w`` ``(N, K)``: 0 where ``|w| < threshold`` (per
    neuron, broadcast from ``(N, 1)``), else the sign (``sign(0) = +1`` never arises: a zero
    weight is below any positive threshold). Signs are 0 where the mask is 0."""
    w = np.asarray(w, dtype=np.float64)
    mask = (np.abs(w) >= np.asarray(threshold, dtype=np.float64)).astype(np.uint8)
    return (sign_bits(w) & mask).astype(np.uint8), mask


def dot_from_popcount(popcount, k):
    """``dot = 2 * popcount - K``: the +-1 dot product of a ``K``-input neuron."""
    return 2 * np.asarray(popcount, dtype=np.int64) - k


def popcount_from_dot(dot, k):
    """Inverse of :func:`dot_from_popcount`; ``dot + K`` must be even."""
    dot = np.asarray(dot, dtype=np.int64)
    if np.any((dot + k) % 2):
        raise ValueError(f"dot + K must be even for K = {k}")
    return (dot + k) // 2


def fire(popcounts, thresholds):
    """Activation of neurons: the number of thresholds each popcount reaches.

    Parameters
    ----------
    popcounts : int array ``(B, N)``
    thresholds : int array ``(N, T)`` with each row sorted ascending; ``T = 1`` for binary
        activations, which then are 1 where ``popcount >= threshold``.

    Returns
    -------
    uint8 array ``(B, N)`` with values in ``0..T``.
    """
    popcounts = np.asarray(popcounts, dtype=np.int64)
    thresholds = np.asarray(thresholds, dtype=np.int64)
    if thresholds.ndim == 1:
        thresholds = thresholds[:, None]
    return (popcounts[:, :, None] >= thresholds[None, :, :]).sum(axis=-1).astype(np.uint8)


def argmax_lowest(scores):
    """Class per row: index of the maximum score, the lowest index on ties."""
    scores = np.asarray(scores)
    # np.argmax returns the first occurrence of the maximum, which is the lowest index.
    return np.argmax(scores, axis=-1).astype(np.int64)


def map_index(shape, r, c, ch):
    """Flattened index of element ``(r, c, ch)`` of a channels-last ``(H, W, C)`` map."""
    _, w, channels = shape
    return (r * w + c) * channels + ch


def _map(x, shape):
    x = np.asarray(x)
    h, w, c = (int(v) for v in shape)
    if x.ndim != 2 or x.shape[1] != h * w * c:
        raise ValueError(f"maps must be (B, {h * w * c}) for shape {(h, w, c)}, "
                         f"not {tuple(x.shape)}")
    return x.reshape(x.shape[0], h, w, c)


def windows(x, shape, kernel, stride=1, pad=0, pad_value=0):
    """The convolution windows of flattened channels-last maps (im2col on bits).

    Parameters
    ----------
    x : array ``(B, H * W * C)``
        Maps flattened channels-last.
    shape : (H, W, C)
    kernel : (kh, kw)
    stride : int
        ``s``, the step between windows along both axes.
    pad : int
        ``p``: the map is read with ``p`` rows above and below and ``p`` columns left and
        right that hold ``pad_value`` in every channel (0: no padding).
    pad_value : int or float
        What a padded position holds: an input code (a bit, or an ``n``-bit element), or for
        real-valued maps a real value.

    Returns
    -------
    array ``(B, Ho * Wo, kh * kw * C)`` with ``Ho = (H + 2p - kh) // s + 1``, ``Wo = (W + 2p -
    kw) // s + 1``: window ``p = i * Wo + j`` (output pixel ``(i, j)``) holds input ``(i s + a -
    p, j s + b - p, ch)`` (``pad_value`` outside the map) at position ``(a * kw + b) * C + ch``,
    the ``(kh, kw, Cin)`` order of the weights.
    """
    m = _map(x, shape)
    kh, kw = (int(v) for v in kernel)
    s, p = int(stride), int(pad)
    if p < 0:
        raise ValueError(f"pad must be a non-negative integer, not {pad!r}")
    if p:
        m = np.pad(m, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=pad_value)
    b, h, w, c = m.shape
    if not (1 <= kh <= h and 1 <= kw <= w) or s < 1:
        raise ValueError(f"kernel {kh}x{kw} with stride {s} does not fit a {h}x{w} map")
    view = np.lib.stride_tricks.sliding_window_view(m, (kh, kw), axis=(1, 2))[:, ::s, ::s]
    # view: (B, Ho, Wo, C, kh, kw) -> (B, Ho, Wo, kh, kw, C)
    view = view.transpose(0, 1, 2, 4, 5, 3)
    return view.reshape(b, view.shape[1] * view.shape[2], kh * kw * c)


def maxpool_or(x, shape, window, stride=None):
    """Max-pool of binary channels-last maps: the OR of each ``window x window`` block (for
    ``n``-bit levels: the largest level of the block).

    ``x`` is ``(B, H * W * C)`` of 0/1; the result is ``(B, Ho * Wo * C)`` channels-last with
    ``Ho = (H - window) // stride + 1`` (``stride`` defaults to ``window``).
    """
    m = _map(x, shape)
    k = int(window)
    s = k if stride is None else int(stride)
    b, h, w, c = m.shape
    if not (1 <= k <= min(h, w)) or s < 1:
        raise ValueError(f"pool window {k} with stride {s} does not fit a {h}x{w} map")
    view = np.lib.stride_tricks.sliding_window_view(m, (k, k), axis=(1, 2))[:, ::s, ::s]
    return view.max(axis=(-2, -1)).astype(np.uint8).reshape(b, -1)
