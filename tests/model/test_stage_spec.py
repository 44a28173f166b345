"""Stage lists of conv topologies: the text form, its inverse, and the shapes after each stage."""

import pytest

from bnnflow.model.stage_spec import (
    check_stages,
    conv_geometry,
    parse_stages,
    pool_geometry,
    stage_shapes,
    stages_text,
)


def test_text_form_parses_to_the_tuples_random_conv_model_takes_and_back():
    stages = parse_stages(" C16k3s2-c8K2-p3s2-p2-d64 ")
    assert stages == (("conv", 16, 3, 3, 2), ("conv", 8, 2), ("pool", 3, 2), ("pool", 2),
                      ("dense", 64))
    assert stages_text(stages) == "c16k3s2-c8k2-p3s2-p2-d64"
    # Stride 1 (conv) and stride = window (pool) are written in the short form.
    assert stages_text([["conv", 4, 3, 3, 1], ["pool", 2, 2], ["dense", 5]]) == "c4k3-p2-d5"
    assert conv_geometry(("conv", 4, 3)) == ((3, 3), 1, 0, 0)
    assert conv_geometry(("conv", 4, 3, 2, 2)) == ((3, 2), 2, 0, 0)
    assert conv_geometry(("conv", 4, 3, 3, 1, 1)) == ((3, 3), 1, 1, 0)
    assert conv_geometry(("conv", 4, 3, 3, 2, 1, 1)) == ((3, 3), 2, 1, 1)
    # Padding: pP after the stride (stride 1 when not given), vV the pad code.
    padded = parse_stages("c4k3p1-c4k3s2p2v1-c4k3p0")
    assert padded == (("conv", 4, 3, 3, 1, 1), ("conv", 4, 3, 3, 2, 2, 1),
                      ("conv", 4, 3, 3, 1, 0))
    assert stages_text(padded) == "c4k3p1-c4k3s2p2v1-c4k3p0"
    assert pool_geometry(("pool", 3)) == (3, 3) and pool_geometry(("pool", 3, 1)) == (3, 1)


@pytest.mark.parametrize("text, message", [
    ("c4", "stage 'c4' of 'c4' must be cNkK, cNkKsS or cNkKsSpP (conv, stride S, padding P), "
           "pW or pWsS (max-pool, stride S) or dN (dense), with positive N, K, W and S"),
    ("c4k3s0-d3", "stage 'c4k3s0' of 'c4k3s0-d3' must be cNkK, cNkKsS or cNkKsSpP"),
    ("c4k3--d3", "stage '' of 'c4k3--d3' must be"),
    ("d8-c4k3", "conv and pool stages must come before the dense stages"),
    ("c4k3v1", "stage 'c4k3v1' of 'c4k3v1' must be"),
    ("c4k3s0p1", "stage 'c4k3s0p1' of 'c4k3s0p1' must be"),
])
def test_bad_text_names_the_stage_and_the_forms(text, message):
    with pytest.raises(ValueError) as e:
        parse_stages(text)
    assert message in str(e.value)


@pytest.mark.parametrize("stage", [("conv", 4), ("conv", 4, 3, 3), ("conv", 4, 0),
                                   ("conv", 4, 3, 3, 1, -1), ("conv", 4, 3, 3, 0, 1),
                                   ("conv", 4, 3, 3, 1, 1, 0, 0),
                                   ("conv", 4, 3, 3, True), ("pool", 2, 2, 2), ("dense", 1.5),
                                   ("relu", 3), ()])
def test_check_stages_refuses_each_malformed_stage(stage):
    with pytest.raises(ValueError, match=r"stage 1 must be \('conv', channels, k\)"):
        check_stages([("conv", 2, 2), stage])


def test_shapes_follow_strides_and_name_a_stage_that_does_not_fit():
    assert stage_shapes((11, 9, 2), [("conv", 6, 3, 3, 2), ("conv", 5, 2), ("pool", 3, 2),
                                     ("dense", 6)]) == [(5, 4, 6), (4, 3, 5), (1, 1, 5), 6]
    assert stage_shapes((28, 28, 1), [("conv", 8, 3, 3, 3), ("pool", 2, 1)]) == [
        (9, 9, 8), (8, 8, 8)]
    with pytest.raises(ValueError, match=r"stage 1 \('conv', 4, 3\): kernel 3x3 is larger than "
                                         r"the 2x2 input map"):
        stage_shapes((5, 5, 1), [("conv", 2, 2, 2, 3), ("conv", 4, 3)])
    with pytest.raises(ValueError, match=r"stage 0 \('pool', 2, 3\): pool stride 3 is larger "
                                         r"than its window 2"):
        stage_shapes((8, 8, 1), [("pool", 2, 3)])
    assert stage_shapes((8, 8, 1), [("conv", 4, 3, 3, 1, 1), ("conv", 2, 3, 3, 2, 2)]) == [
        (8, 8, 4), (5, 5, 2)]
    with pytest.raises(ValueError, match=r"stage 0 \('conv', 4, 3, 3, 1, 3\): conv pad must be "
                                         r"an integer in 0..2 \(less than the 3x3 kernel\), "
                                         r"not 3"):
        stage_shapes((8, 8, 1), [("conv", 4, 3, 3, 1, 3)])
    with pytest.raises(ValueError, match="square kernels only, not 3x2"):
        stages_text([("conv", 4, 3, 2, 1)])
