# amaranth: UnusedElaboratable=no
"""Conv networks through BnnTop on Amaranth's simulator: pixel-stream input, conv, pool and
dense layers chained, against the golden model under random stalls; II and reset."""

import numpy as np
import pytest

from bnnflow.hw.testbench import fields_of, simulate_stream
from bnnflow.hw.timing import needed_pixels
from bnnflow.hw.top import BnnTop
from bnnflow.model import golden
from bnnflow.model.conventions import pack_int
from bnnflow.model.random_net import random_conv_model

#: (input map, stages, classes, folding, pipeline)
CASES = [
    ((7, 6, 2), [("conv", 5, 3), ("pool", 2), ("dense", 6)], 3, "5x18,1x1,2x10,3x6", 0),
    ((9, 9, 1), [("conv", 3, 2), ("conv", 4, 3), ("pool", 3), ("dense", 5)], 4,
     "1x2,2x9,1x1,5x8,2x5", 1),
    ((6, 7, 19), [("conv", 6, 1), ("dense", 7)], 4, "3x19,7x36,4x7", 2),
    ((8, 5, 3), [("conv", 4, 5), ("dense", 6)], 2, "2x25,3x8,2x6", 1),
    ((10, 10, 2), [("conv", 4, 3), ("pool", 2), ("conv", 5, 2), ("dense", 5)], 3,
     "4x6,1x1,1x16,5x15,3x5", 2),
    # Overlapping max-pools: 3x3 windows every 2 pixels, 2x2 every pixel.
    ((9, 8, 2), [("conv", 4, 2), ("pool", 3, 2), ("dense", 5)], 3, "2x4,1x1,1x12,3x5", 1),
    ((8, 7, 1), [("conv", 3, 3), ("pool", 2, 1), ("dense", 4)], 2, "3x9,1x1,2x9,2x4", 2),
    # A 1x1 map: its one pixel is the dense layer's whole input, taken fully parallel (SIMD
    # = K), or with K = 1 (the pool also drops the map's last row).
    ((3, 3, 2), [("conv", 4, 3), ("dense", 5)], 2, "1x18,5x4,2x5", 0),
    ((3, 2, 1), [("conv", 1, 1), ("pool", 2), ("dense", 3)], 2, "1x1,1x1,3x1,2x3", 1),
    # Strided convs: 3x3 every 2 pixels (the 9x8 map's last column read by no window); 2x2
    # every 3 (rows 8-10 and column 9 dropped) before a stride-1 conv and a pool that drops
    # a row; a slow MVTU (45 cycles a window) behind a stride-2 window unit.
    ((9, 8, 2), [("conv", 4, 3, 3, 2), ("dense", 5)], 3, "2x9,5x8,3x5", 1),
    ((11, 10, 1), [("conv", 3, 2, 2, 3), ("conv", 4, 2, 2, 1), ("pool", 2), ("dense", 4)], 2,
     "3x4,2x6,1x1,4x4,2x4", 2),
    ((10, 9, 3), [("conv", 5, 3, 3, 2), ("pool", 2, 1), ("dense", 4)], 3, "1x3,1x1,4x15,3x4",
     0),
    # Padded convs: a 3x3 "same" conv (pad 1, code 0) before a pool; pad 1 with code 1 at
    # stride 2 (11x9 padded, 5x4 out); pad 2 into a pad-1 conv of code 1 behind it, both
    # folded slower than their padded maps.
    ((7, 6, 3), [("conv", 4, 3, 3, 1, 1), ("pool", 2), ("dense", 5)], 3, "2x9,1x1,5x12,3x5",
     1),
    ((9, 7, 2), [("conv", 4, 3, 3, 2, 1, 1), ("dense", 5)], 3, "4x18,5x16,3x5", 0),
    ((5, 6, 1), [("conv", 3, 3, 3, 1, 2), ("conv", 4, 2, 2, 1, 1, 1), ("dense", 4)], 2,
     "3x3,2x12,4x32,2x4", 2),
]


def pixels(model, images):
    """Each image's channels-last map as pixel payloads, the input_layout of a conv top."""
    h, w, c = model.input.map_shape
    return [pack_int(img[p * c:(p + 1) * c]) for img in images for p in range(h * w)]


def drops_rows(model):
    """Whether a pool or conv of ``model`` reads no window from its map's last rows or columns
    (padded maps included)."""
    for layer in model.layers:
        if hasattr(layer, "in_shape"):
            h, w, _ = getattr(layer, "padded_shape", layer.in_shape)
            k = getattr(layer, "kernel", None) or (layer.window, layer.window)
            if (h - k[0]) % layer.stride or (w - k[1]) % layer.stride:
                return True
    return False


def tapped_images(fields, layer, model, images=3):
    """A tap's elements as one row per image. A pool or conv that drops the map's last rows
    lets the last output leave before the layers in front of it have sent those rows, so in
    such a network the run may stop with the last image's map tap short: that image is left
    out. Every other tap must hold every image."""
    per = layer.out_width
    whole = len(fields.reshape(-1)) // per
    drops = hasattr(layer, "out_shape") and drops_rows(model)
    assert whole == images or (drops and whole == images - 1)
    return fields.reshape(-1)[:whole * per].reshape(whole, per)


#: Every conv layer folded so that its windows reach the MVTU a pixel a cycle
#: (hw/pixel_window.py): SIMD a multiple of Cin, SF > 1, kh * kw <= the MVTU's cycles a window
#: (equal in the second conv of the fifth case); 3x3, 2x2 and 2x1 kernels, strides 2 and 3,
#: padding, a pool dropping a row.
PIXEL_CASES = [
    ((7, 6, 2), [("conv", 5, 3), ("pool", 2), ("dense", 6)], 3, "1x2,1x1,2x10,3x6", 0),
    ((9, 9, 1), [("conv", 3, 2), ("conv", 4, 3), ("pool", 3), ("dense", 5)], 4,
     "1x1,2x3,1x1,5x8,2x5", 1),
    ((9, 8, 2), [("conv", 4, 3, 3, 2), ("dense", 5)], 3, "1x6,5x8,3x5", 2),
    ((7, 6, 3), [("conv", 4, 3, 3, 1, 1), ("pool", 2), ("dense", 5)], 3, "1x9,1x1,5x12,3x5",
     1),
    ((5, 6, 1), [("conv", 3, 3, 3, 1, 2), ("conv", 4, 2, 2, 1, 1, 1), ("dense", 4)], 2,
     "1x3,2x3,4x32,2x4", 2),
    ((11, 10, 1), [("conv", 3, 2, 2, 3), ("conv", 4, 2, 2, 1), ("pool", 2), ("dense", 4)], 2,
     "1x1,2x6,1x1,4x4,2x4", 0),
    ((6, 5, 3), [("conv", 4, 2, 1), ("dense", 3)], 2, "1x3,3x8,2x3", 1),
]


#: Every conv layer folded so that its windows reach the MVTU a window row a cycle
#: (hw/row_window.py) and not a pixel a cycle: SIMD a multiple of kw * Cin, SF > 1, kh <= the
#: MVTU's cycles a window < kh * kw (equal to kh in the first); 3x3, 2x2 and 3x5 kernels,
#: strides 2 and 3 (above kw), padding, pools.
ROW_CASES = [
    ((7, 6, 2), [("conv", 5, 3), ("pool", 2), ("dense", 6)], 3, "5x6,1x1,2x10,3x6", 0),
    ((9, 9, 1), [("conv", 3, 2), ("conv", 4, 3), ("pool", 3), ("dense", 5)], 4,
     "3x2,2x9,1x1,5x8,2x5", 1),
    ((9, 8, 2), [("conv", 4, 3, 3, 2), ("dense", 5)], 3, "2x6,5x8,3x5", 2),
    ((7, 6, 3), [("conv", 4, 3, 3, 1, 1), ("pool", 2), ("dense", 5)], 3, "4x9,1x1,5x12,3x5",
     1),
    ((5, 6, 1), [("conv", 3, 3, 3, 1, 2), ("conv", 4, 2, 2, 1, 1, 1), ("dense", 4)], 2,
     "3x3,4x6,4x32,2x4", 2),
    ((11, 10, 1), [("conv", 3, 2, 2, 3), ("conv", 4, 2, 2, 1), ("pool", 2), ("dense", 4)], 2,
     "3x2,4x6,1x1,4x4,2x4", 0),
    ((8, 12, 2), [("conv", 3, 3, 5)], 4, "3x10,2x12", 1),
]


def build(case, seed=0, window=None):
    shape, stages, classes, fold, pipeline = case
    model = random_conv_model(shape, stages, classes, seed=seed)
    return model, BnnTop(model, fold, pipeline, debug_taps=True, window=window)


def check_outputs(model, top, images, outputs):
    g = golden.run(model, images)
    assert np.array_equal(fields_of(outputs, 1, top.class_width)[:, 0], g.classes)
    pops = fields_of(outputs, top.num_classes, top.popcount_width, lsb=top.class_width)
    assert np.array_equal(pops, g.popcounts)


ALL_CASES = ([(c, None) for c in CASES] + [(c, "pixels") for c in PIXEL_CASES]
             + [(c, "rows") for c in ROW_CASES])
ALL_IDS = [f"{c[0]}{'-' + w if w else ''}" for c, w in ALL_CASES]


@pytest.mark.parametrize(("case", "window"), ALL_CASES, ids=ALL_IDS)
@pytest.mark.parametrize(("p_valid", "p_ready", "seed"), [(1.0, 1.0, 0), (0.6, 0.5, 1)])
def test_conv_networks_match_golden_under_stalls(case, window, p_valid, p_ready, seed):
    model, top = build(case, seed, window)
    imgs = np.random.default_rng(seed).integers(0, 2, (3, model.input.width), dtype=np.uint8)
    taps = {f"t{j}": (getattr(top, f"tap_{j}_valid"), getattr(top, f"tap_{j}_data"))
            for j in range(len(model.layers))}
    run = simulate_stream(top, pixels(model, imgs), expected_outputs=3, seed=seed,
                          p_valid=p_valid, p_ready=p_ready, taps=taps, max_cycles=200000)
    check_outputs(model, top, imgs, run.outputs)
    g = golden.run(model, imgs)
    for j, layer in enumerate(model.layers[:-1]):
        if hasattr(layer, "out_shape"):    # conv and pool taps show one pixel a transfer
            c = layer.out_shape[2]
            got = tapped_images(fields_of([v for _, v in run.taps[f"t{j}"]], c), layer, model)
        else:
            got = tapped_images(fields_of([v for _, v in run.taps[f"t{j}"]], layer.out_width),
                                layer, model)
        assert np.array_equal(got, g.activations[j][:len(got)])


@pytest.mark.parametrize(("case", "window"), ALL_CASES, ids=ALL_IDS)
def test_stall_free_ii_equals_the_slowest_layer_and_latency_the_cycle_model(case, window):
    model, top = build(case, window=window)
    if window:
        assert {u.window_kind for u in top.layers if hasattr(u, "window_kind")} == {window}
    imgs = np.random.default_rng(5).integers(0, 2, (5, model.input.width), dtype=np.uint8)
    run = simulate_stream(top, pixels(model, imgs), expected_outputs=5, max_cycles=200000)
    check_outputs(model, top, imgs, run.outputs)
    # Steady state: the last images leave one II apart.
    assert np.diff(run.out_edges)[-2:].tolist() == [top.ii, top.ii]
    assert top.ii == max(layer.cycles(fold) for layer, fold in zip(model.layers, top.folding,
                                                                    strict=True))
    sidecar = top.sidecar()
    h, w, c = model.input.map_shape
    assert sidecar["input_layout"] == {"kind": "pixels", "shape": [h, w, c], "width": c,
                                       "transfers": h * w, "needed": needed_pixels(model)}
    assert sidecar["ports"]["i__payload"]["width"] == c
    # From the first image's last pixel to its output, as the cycle model (hw/timing.py) says.
    assert run.out_edges[0] - run.in_edges[h * w - 1] == sidecar["latency"] == top.latency


@pytest.mark.parametrize("reset_at", [7, 40])
def test_reset_mid_stream_recovers(reset_at):
    model, top = build(CASES[1])
    imgs = np.random.default_rng(2).integers(0, 2, (2, model.input.width), dtype=np.uint8)
    run = simulate_stream(top, pixels(model, imgs), reset_at=reset_at,
                          input_after_reset=pixels(model, imgs), expected_outputs=2,
                          p_valid=0.7, p_ready=0.6, seed=4, max_cycles=200000)
    check_outputs(model, top, imgs, run.outputs)


def test_a_dense_layer_that_cannot_take_pixels_is_refused():
    model = random_conv_model((7, 6, 2), [("conv", 5, 3), ("pool", 2), ("dense", 6)], 3)
    with pytest.raises(ValueError, match=r"layer 2 \(fc2\) cannot take the 5-bit pixels of "
                                         r"layer 1 \(pool1\) with folding 6x20: a dense layer "
                                         r"after a map needs SIMD a multiple of 5 and below its "
                                         r"20 inputs, or all 20$"):
        BnnTop(model, "5x18,1x1,6x20,3x6")


def test_the_simd_a_dense_layer_after_a_map_of_levels_needs_counts_levels():
    # It said "a multiple of 10" (the pixel's bits) where SIMD 5 and 10 are both taken.
    model = random_conv_model((7, 6, 2), [("conv", 5, 3), ("pool", 2), ("dense", 6)], 3,
                              act_bits=2)
    with pytest.raises(ValueError, match=r"layer 2 \(fc2\) cannot take the pixels of 5 2-bit "
                                         r"levels of layer 1 \(pool1\) with folding 6x4: a "
                                         r"dense layer after a map needs SIMD a multiple of 5 "
                                         r"and below its 20 inputs, or all 20$"):
        BnnTop(model, "5x18,1x1,6x4,3x6")
    for simd in (5, 10):
        assert BnnTop(model, f"5x18,1x1,6x{simd},3x6").folding[2].simd == simd


#: The new conv kinds (issue 18): ternary conv and dense layers, 8-bit pixels into the first
#: conv, n-bit activations (pools of levels); odd sizes, several foldings, pipeline 0..2.
KIND_CASES = [
    ({"ternary": True}, CASES[0]),
    ({"ternary": True}, CASES[1]),
    ({"input_bits": 8}, CASES[0]),
    ({"input_bits": 8}, ((5, 7, 3), [("conv", 4, 3), ("conv", 3, 2), ("dense", 5)], 3,
                         "2x9,3x8,5x12,3x5", 1)),
    ({"ternary": True, "input_bits": 8}, CASES[3]),
    ({"ternary": True, "input_bits": 8}, CASES[4]),
    ({"act_bits": 2}, CASES[1]),
    ({"act_bits": 2, "ternary": True}, CASES[4]),
    ({"act_bits": 3, "input_bits": 8}, CASES[2]),
    ({"act_bits": 2}, CASES[5]),
    ({"act_bits": 2, "ternary": True}, CASES[6]),
    # Strided convs of the new kinds.
    ({"act_bits": 2}, CASES[9]),
    ({"ternary": True, "input_bits": 8, "act_bits": 2}, CASES[10]),
    # Padded convs of the new kinds: ternary, and 8-bit pixels bordered by the code 200 at
    # stride 2 into a pad-1 conv of code 1.
    ({"ternary": True, "act_bits": 2}, CASES[12]),
    ({"input_bits": 8}, ((5, 7, 3), [("conv", 4, 3, 3, 2, 1, 200), ("conv", 3, 2, 2, 1, 1, 1),
                                     ("dense", 5)], 3, "2x9,3x4,5x12,3x5", 1)),
    # Windows a pixel a cycle (hw/pixel_window.py) of 8-bit pixels, ternary weights, levels.
    ({"input_bits": 8, "window": "pixels"}, PIXEL_CASES[0]),
    ({"ternary": True, "act_bits": 2, "window": "pixels"}, PIXEL_CASES[1]),
    ({"ternary": True, "input_bits": 8, "act_bits": 2, "window": "pixels"}, PIXEL_CASES[4]),
    # Windows a row a cycle (hw/row_window.py) of the same kinds.
    ({"input_bits": 8, "window": "rows"}, ROW_CASES[0]),
    ({"ternary": True, "act_bits": 2, "window": "rows"}, ROW_CASES[1]),
    ({"ternary": True, "input_bits": 8, "act_bits": 2, "window": "rows"}, ROW_CASES[4]),
    ({"input_bits": 8, "act_bits": 3, "window": "rows"}, ROW_CASES[6]),
]


def level_pixels(model, images):
    """Pixel payloads of ``n``-bit images: element ``c`` of a pixel at ``[c*n, (c+1)*n)``."""
    h, w, c = model.input.map_shape
    n = model.input.bits
    return [pack_int(img[p * c:(p + 1) * c], n) for img in images for p in range(h * w)]


@pytest.mark.parametrize(("kw", "case"), KIND_CASES,
                         ids=[f"{'-'.join(map(str, kw.values()))}-{c[0]}" for kw, c in KIND_CASES])
@pytest.mark.parametrize(("p_valid", "p_ready", "seed"), [(1.0, 1.0, 0), (0.6, 0.5, 1)])
def test_ternary_and_8_bit_conv_networks_match_golden(kw, case, p_valid, p_ready, seed):
    shape, stages, classes, fold, pipeline = case
    kw = dict(kw)
    window = kw.pop("window", None)
    model = random_conv_model(shape, stages, classes, seed=seed, **kw)
    assert model.layers[0].kind == ("ternary_conv2d" if kw.get("ternary") else "binary_conv2d")
    assert model.layers[0].activation_bits == kw.get("act_bits", 1)
    top = BnnTop(model, fold, pipeline, debug_taps=True, window=window)
    taps = {f"t{j}": (getattr(top, f"tap_{j}_valid"), getattr(top, f"tap_{j}_data"))
            for j in range(len(model.layers))}
    n = model.input.bits
    imgs = np.random.default_rng(seed).integers(0, 1 << n, (3, model.input.width))
    run = simulate_stream(top, level_pixels(model, imgs), expected_outputs=3, seed=seed,
                          p_valid=p_valid, p_ready=p_ready, taps=taps, max_cycles=200000)
    check_outputs(model, top, imgs, run.outputs)
    g = golden.run(model, imgs)
    for j, layer in enumerate(model.layers[:-1]):     # every hidden layer's levels
        a = layer.activation_bits
        count = layer.out_shape[2] if hasattr(layer, "out_shape") else layer.out_width
        got = tapped_images(fields_of([v for _, v in run.taps[f"t{j}"]], count, a), layer,
                            model)
        assert np.array_equal(got, g.activations[j][:len(got)])
    layout = top.sidecar()["input_layout"]
    assert layout["width"] == shape[2] * n == top.port_widths()["i__payload"]["width"]
    assert layout.get("element_bits", 1) == n
    if p_valid == 1.0:
        assert np.diff(run.out_edges)[-1] == top.ii
        h, w = shape[:2]
        assert run.out_edges[0] - run.in_edges[h * w - 1] == top.latency


@pytest.mark.parametrize(("fold", "why"), [
    ("5x18,1x1,2x10,3x6", r"its MVTU reads the whole window every cycle \(SF 1\)"),
    ("1x3,1x1,2x10,3x6", "SIMD 3 is not a multiple of Cin 2"),
    ("5x4,1x1,2x10,3x6", "its 9 window pixels take longer than the MVTU's 5 cycles a "
                         "window"),
])
def test_windows_a_pixel_a_cycle_are_refused_where_the_mvtu_cannot_take_them(fold, why):
    model = random_conv_model((7, 6, 2), [("conv", 5, 3), ("pool", 2), ("dense", 6)], 3)
    with pytest.raises(ValueError, match=rf"conv0: folding {fold.split(',')[0]} cannot take "
                                         rf"its windows a pixel a cycle: {why}"):
        BnnTop(model, fold, window="pixels")


@pytest.mark.parametrize(("fold", "why"), [
    ("5x18,1x1,2x10,3x6", r"its MVTU reads the whole window every cycle \(SF 1\)"),
    ("1x4,1x1,2x10,3x6", "SIMD 4 is not a multiple of kw x Cin = 6"),
    ("5x12,1x1,2x10,3x6", "its 3 window rows take longer than the MVTU's 2 cycles a window"),
])
def test_windows_a_row_a_cycle_are_refused_where_the_mvtu_cannot_take_them(fold, why):
    model = random_conv_model((7, 6, 2), [("conv", 5, 3), ("pool", 2), ("dense", 6)], 3)
    with pytest.raises(ValueError, match=rf"conv0: folding {fold.split(',')[0]} cannot take "
                                         rf"its windows a window row a cycle: {why}"):
        BnnTop(model, fold, window="rows")


def test_window_kinds_are_checked_and_chosen_by_the_folding():
    model = random_conv_model((7, 6, 2), [("conv", 5, 3), ("pool", 2), ("dense", 6)], 3)
    with pytest.raises(ValueError, match="window must be one of registers, pixels, rows or "
                                         "None, not 'lines'"):
        BnnTop(model, "1x2,1x1,2x10,3x6", window="lines")
    folds = ("1x2,1x1,2x10,3x6", "5x6,1x1,2x10,3x6", "3x6,1x1,2x10,3x6", "5x12,1x1,2x10,3x6",
             "5x18,1x1,2x10,3x6", "1x6,1x1,2x10,3x6")
    kinds = {fold: BnnTop(model, fold).layers[0].window_kind for fold in folds}
    # Pixels where the MVTU spends at least 9 cycles a window (1x6: 15); at 3 to 8 (5x6: 3,
    # 3x6: 6) rows can be built, but an 18-bit window stays in registers unless asked for.
    assert kinds == {"1x2,1x1,2x10,3x6": "pixels", "5x6,1x1,2x10,3x6": "registers",
                     "3x6,1x1,2x10,3x6": "registers", "5x12,1x1,2x10,3x6": "registers",
                     "5x18,1x1,2x10,3x6": "registers", "1x6,1x1,2x10,3x6": "pixels"}
    for fold in ("5x6,1x1,2x10,3x6", "3x6,1x1,2x10,3x6", "1x6,1x1,2x10,3x6"):
        assert BnnTop(model, fold, window="rows").layers[0].window_kind == "rows"
    # 8 channels: 72-bit windows, read a row a cycle at 3 and 6 cycles a window (auto).
    wide = random_conv_model((7, 6, 8), [("conv", 5, 3), ("pool", 2), ("dense", 6)], 3)
    kinds = {fold: BnnTop(wide, fold).layers[0].window_kind
             for fold in ("5x24,1x1,2x10,3x6", "3x24,1x1,2x10,3x6", "5x48,1x1,2x10,3x6")}
    assert kinds == {"5x24,1x1,2x10,3x6": "rows", "3x24,1x1,2x10,3x6": "rows",
                     "5x48,1x1,2x10,3x6": "registers"}
    assert BnnTop(model, "1x2,1x1,2x10,3x6", window="registers").layers[0].queue_depth > 0
