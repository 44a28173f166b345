# amaranth: UnusedElaboratable=no

"""The networks of a campaign: ``--sizes`` entries, the networks made of them and their random
foldings."""

import numpy as np
import pytest

from bnnflow.hw.folding import resolve_folding
from bnnflow.hw.top import BnnTop
from bnnflow.model.random_net import random_model
from bnnflow.sim.campaign_nets import parse_net, random_folding


def test_dense_and_conv_entries():
    dense = parse_net(" 16x8-4 ")
    assert (str(dense), dense.widths, dense.layers, dense.input_width) == ("16-8-4", (16, 8, 4),
                                                                          2, 16)
    conv = parse_net("8X8x2:C4k3-p2-d6-3")
    assert str(conv) == "8x8x2:c4k3-p2-d6-3"
    assert conv.in_shape == (8, 8, 2) and conv.classes == 3 and conv.layers == 4
    assert conv.stages == (("conv", 4, 3), ("pool", 2), ("dense", 6))
    assert conv.input_width == 128
    model = conv.make(5, {"ternary": True, "act_bits": 2})
    assert [layer.kind for layer in model.layers] == ["ternary_conv2d", "maxpool2d",
                                                      "ternary_dense", "binary_dense"]
    assert model.layers[-1].in_bits == 2
    assert dense.make(3).widths == random_model([16, 8, 4], seed=3).widths
    overlap = parse_net("9x9x1:c2k2-p3s2-d4-3")
    assert overlap.stages == (("conv", 2, 2), ("pool", 3, 2), ("dense", 4))
    assert overlap.make(0).layers[1].out_shape == (3, 3, 2)
    strided = parse_net("9x8x1:c2k3s2-d4-3")
    assert strided.stages == (("conv", 2, 3, 3, 2), ("dense", 4))
    assert strided.make(0).layers[0].out_shape == (4, 3, 2)


@pytest.mark.parametrize(("text", "message"), [
    ("8x8:c4k3-3", "a conv network is HxWxC:stages-classes, like 8x8x2:c4k3-p2-d6-3, not "
                   "'8x8:c4k3-3'"),
    ("8x8x1:c4k3", "a conv network is HxWxC:stages-classes"),
    ("8x8x1:c4k3-0", "a conv network is HxWxC:stages-classes"),
    ("8x8x1:c4-3", "stage 'c4' of '8x8x1:c4-3' must be cNkK, cNkKsS or cNkKsSpP (conv, "
                   "stride S, padding P), pW or pWsS (max-pool, stride S) or dN (dense), with "
                   "positive N, K, W and S"),
    ("8x8x1:c4k3s0-3", "stage 'c4k3s0' of '8x8x1:c4k3s0-3' must be cNkK"),
    ("8x8x1:c4k3-p3s0-3", "stage 'p3s0' of '8x8x1:c4k3-p3s0-3' must be cNkK"),
    ("8x8x1:c0k3-3", "stage 'c0k3' of '8x8x1:c0k3-3' must be cNkK"),
])
def test_bad_conv_entries_say_the_form(text, message):
    with pytest.raises(ValueError, match=f"^{message}".replace("(", r"\(").replace(")", r"\)")):
        parse_net(text)


@pytest.mark.parametrize("seed", range(20))
def test_random_foldings_are_valid_and_can_make_a_dropped_ready_visible(seed):
    model = random_model([24, 12, 6, 3], seed=seed)
    rng = np.random.default_rng(seed)
    resolve_folding(model, random_folding(model, rng))
    for j in (0, 1):
        folds = resolve_folding(model, random_folding(model, rng, slower_after=j))
        assert model.layers[j + 1].cycles(folds[j + 1]) > model.layers[j].cycles(folds[j])


@pytest.mark.parametrize("seed", range(12))
def test_random_foldings_of_conv_networks_are_ones_the_hardware_takes(seed):
    # A dense layer after a map takes whole pixels: a SIMD drawn from 1..K alone would often
    # be refused by the hardware (and the campaign's design would fail to build).
    spec = parse_net("7x7x3:c5k3-p2-c4k2-d6-3")
    model = spec.make(seed, {"act_bits": 2} if seed % 2 else None)
    rng = np.random.default_rng(seed)
    for slower_after in (None, 0, 1, 2, 3):
        folding = resolve_folding(model, random_folding(model, rng, slower_after))
        BnnTop(model, folding)                     # refuses a folding it cannot feed
