"""Which layer goes wrong first: the debug-tap rerun of :func:`bnnflow.sim.verify.run_verify`.

When an output differs from the golden model, :func:`first_mismatch` runs the stream again, up
to the first mismatching image, with the same seed and stalls, on the design generated with
``debug_taps=True``; each layer's tap is compared with the golden model's ``layer_outputs()``
for that image and the first layer that differs is named (``"argmax"`` when every layer agrees
but the output does not). A conv or pool layer's tap shows one output pixel per transfer (the
sidecar tap's ``count`` per image); its pixels are joined into the channels-last vector, and
the detail names the first differing pixel (row, column) and channel.
"""

from ..model.conventions import pack_int
from .backend import BACKENDS, SimJob, golden_expected

__all__ = ["first_mismatch", "first_layer", "golden_tap_values"]


def golden_tap_values(result, k, pw, widths=None):
    """Golden per-layer outputs of stream item ``k`` packed like the hardware taps: hidden
    layer ``j``'s elements ``widths[j]`` bits each (its activation bits; None: 1 each)."""
    outs = result.layer_outputs()
    widths = widths or [1] * (len(outs) - 1)
    values = [pack_int(a[k], w) for a, w in zip(outs[:-1], widths, strict=True)]
    values.append(pack_int(outs[-1][k], pw))
    return values


def _tap_vector(entries, k, count, width):
    """Item ``k``'s vector from a tap's transfers: ``count`` per item of ``width`` bits each
    (``count`` 1: whole vectors); None if the tap has not shown all of them."""
    if len(entries) < (k + 1) * count:
        return None
    return sum(int(v) << (t * width) for t, v in enumerate(entries[k * count:(k + 1) * count]))


def first_layer(model, result, k, tap_data, pw, taps=None):
    """Name and index of the first layer whose tap differs from golden for stream item ``k``.

    ``taps`` is the sidecar's ``taps`` list (None: every tap shows whole vectors).
    """
    want = golden_tap_values(result, k, pw,
                             [layer.activation_bits for layer in model.layers[:-1]])
    for j, layer in enumerate(model.layers):
        tap = (taps or [{}] * len(model.layers))[j]
        pixels = tap.get("kind") == "pixels"
        count, width = (int(tap["count"]), int(tap["width"])) if pixels else (1, 0)
        got = _tap_vector(tap_data[j], k, count, width)
        if got != want[j]:
            detail = {"expected": want[j], "actual": got}
            if got is not None and not layer.is_output:
                diff, a = want[j] ^ got, layer.activation_bits
                # The elements (neurons; a bits each) whose value differs.
                bits = [n for n in range(layer.out_width) if diff >> (n * a) & ((1 << a) - 1)]
                detail["neurons"] = bits[:16]
                if pixels:
                    cols, channels = layer.out_shape[1], layer.out_shape[2]
                    row, col = divmod(bits[0] // channels, cols)
                    detail.update(pixel=[row, col], channel=bits[0] % channels)
            return layer.name, j, detail
    return "argmax", len(model.layers), None


def first_mismatch(simulator, design, model, gold, mismatch, *, bits, ids, timing_order,
                   popcount_width, stall, seed, build_root, reset_after, progress):
    """The report's ``first_mismatch``: ``mismatch`` and the first layer that differs.

    Parameters
    ----------
    simulator : str
        The back end of the main run (:data:`BACKENDS`).
    design : HwDesign
    model : BnnModel
        The golden model; ``gold`` is its result on ``bits``.
    mismatch : Mismatch
        The main run's first mismatch.
    bits, ids, timing_order :
        The main run's stimulus, image ids and timing-phase images.
    popcount_width : int
    stall, seed, build_root, reset_after, progress :
        As for the main run, so that the rerun sees the same stalls (and the same reset).
    """
    k = ids.index(mismatch.image)
    # Up to image k the rerun sees the same stalls; with a reset it needs every image (the
    # reset's edge depends on the images still to send).
    last = len(bits) if reset_after is not None else k + 1
    # One image more (image k again if it is the last): a layer's tap may still owe pixels of
    # image k when its output leaves (a pool drops the map's last rows and columns), but not
    # once the next image's output has left.
    order = [*range(last), min(last, len(bits) - 1)]
    expected = {"timing": golden_expected(gold, timing_order),
                "main": golden_expected(gold, order)}
    width = model.input.bits        # n-bit input elements, as the main run packs them
    job = SimJob([pack_int(bits[i], width) for i in order],
                 [pack_int(b, width) for b in bits[timing_order]], stall=stall, seed=seed,
                 debug_taps=True, build_root=build_root, reset_after=reset_after,
                 expected=expected, label="diagnose")
    diag = BACKENDS[simulator](design, job, progress)
    name, index, detail = first_layer(model, gold, k, diag.tap_data, popcount_width,
                                      diag.sidecar.get("taps"))
    return {**mismatch.to_dict(), "layer": name, "layer_index": index, "layer_detail": detail}
