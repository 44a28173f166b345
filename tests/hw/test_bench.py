# amaranth: UnusedElaboratable=no
"""hw.bench and the popcount style option of MVTU / BnnTop / generate."""

import numpy as np
import pytest
from amaranth.back import rtlil

from bnnflow.hw import bench, mvtu
from bnnflow.hw.popcount import DEFAULT_STYLE
from bnnflow.hw.verilog import generate
from bnnflow.model.random_net import random_model


def _mvtu_rtlil(**kw):
    rng = np.random.default_rng(0)
    weights = rng.integers(0, 2, size=(4, 64))
    return rtlil.convert(mvtu.MVTU(weights, np.full((4, 1), 32), (4, 64), 2, **kw), name="mvtu")


@pytest.mark.parametrize(("style", "kept"), [({}, DEFAULT_STYLE == "keep"),
                                             ({"popcount_style": "generic"}, False),
                                             ({"popcount_style": "keep"}, True)])
def test_popcount_style_reaches_the_mvtu_popcounts(style, kept):
    assert ("attribute \\keep" in _mvtu_rtlil(**style)) == kept


def test_generate_records_the_popcount_style_in_the_sidecar():
    model = random_model([20, 8, 4], seed=1)
    text_g, side_g = generate(model, pipeline=1, popcount_style="generic")
    text_k, side_k = generate(model, pipeline=1)
    assert side_g["popcount_style"] == "generic" and side_k["popcount_style"] == DEFAULT_STYLE
    assert text_g != text_k


@pytest.mark.parametrize("bad", ["ecp5", 3])
def test_unknown_popcount_style_is_rejected(bad):
    with pytest.raises(ValueError, match=f"^popcount_style must be one of 'generic', 'keep', "
                                         f"not {bad!r}$"):
        mvtu.MVTU(np.ones((2, 4)), np.ones((2, 1)), popcount_style=bad)
    with pytest.raises(ValueError, match=f"^style must be one of 'generic', 'keep', not "
                                         f"{bad!r}$"):
        bench.generation_cost([8, 4], style=bad)
