"""Choosing a folding for a target: suggested IIs, fit_folding, hints when a design does not
fit, and the search of --fold fit (fit_by_placement) over foldings that do not place."""

import dataclasses
import json

import pytest

from bnnflow.boards import estimate, fit, targets
from bnnflow.boards.estimate import estimate_logic
from bnnflow.boards.fit import (
    FIT_ATTEMPTS,
    DoesNotFit,
    NotPlaced,
    fit_by_placement,
    fit_folding,
    suggest_ii,
)
from bnnflow.hw.folding import LayerFold, auto_fold, resolve_folding
from bnnflow.model.random_net import random_model

R64 = random_model([64, 64, 64, 64, 10], seed=0)


def test_suggested_ii_is_the_smallest_power_of_two_predicted_to_fit():
    model = random_model([64, 64, 64, 10], seed=0)
    full = [LayerFold(64, 64), LayerFold(64, 64), LayerFold(10, 64)]
    scale = 9000 / estimate.estimate_logic(model, full, "ice40")
    ii = suggest_ii(model, full, needed=9000, available=5280)
    assert ii is not None and ii > 1 and ii & (ii - 1) == 0

    def predicted(ii):
        return estimate.estimate_logic(model, auto_fold(model, ii)[0], "ice40") * scale

    assert predicted(ii) <= 0.9 * 5280 < predicted(ii // 2)
    assert suggest_ii(model, full, needed=10**9, available=10) is None


def test_suggested_ii_respects_block_ram_and_logic():
    model = random_model([128, 128, 10], seed=0)
    full = [LayerFold(128, 128), LayerFold(10, 128)]
    need = estimate.estimate_logic(model, full, "ice40")
    ii = suggest_ii(model, full, needed=need, available=5280, brams_available=30,
                    family="ice40")

    def fits(ii):
        fold, _ = auto_fold(model, ii)
        return (estimate.estimate_logic(model, fold, "ice40") <= 0.9 * 5280
                and estimate.estimate_brams(model, fold, "ice40") <= 30)

    assert ii > 1 and fits(ii) and not fits(ii // 2)
    # Block RAM alone: fully parallel needs none.
    assert suggest_ii(model, full, brams_available=30, family="ice40") == 1


def test_a_conv_network_is_fitted_at_its_input_bound_ii_between_two_powers_of_two():
    # A 28x28 input streams a pixel a cycle: 784 is the fastest II; 512 cannot be met, and
    # 1024 (968 once folded) fitted the iCEBreaker with half of it free (1855 LUT4, 14 BRAM).
    from bnnflow.model.random_net import random_conv_model

    model = random_conv_model((28, 28, 1), [("conv", 8, 3), ("pool", 2), ("conv", 16, 3),
                                            ("pool", 2), ("dense", 32)], 10, seed=0)
    folding, ii = fit.fit_folding(model, "ice40-up5k", pipeline=2)
    assert ii == 784 and ",".join(map(str, folding)) == "8x9,1x1,8x24,1x1,2x16,1x1"
    # Where even the fastest folding is estimated not to fit, powers of two follow as before.
    need = estimate.estimate_logic(model, folding, "ice40", 2)
    ii = suggest_ii(model, folding, needed=need * 2, available=5280, family="ice40",
                    pipeline=2)
    assert ii > 784 and ii & (ii - 1) == 0


def test_a_failed_folding_is_never_suggested_again():
    # 784-64-64-64-10 at II 512 on the UP5K: nextpnr wanted 6199 logic cells of 5280
    # (measured); no larger II is predicted to fit, so no II is suggested.
    model = random_model([784, 64, 64, 64, 10], seed=0)
    fold, _ = auto_fold(model, 512)
    hint = fit._fit_hint(model, fold, 6199, 5280, 30, "ice40")
    assert hint == ("no folding of this network is expected to fit; choose a larger target "
                    "(ice40-hx8k, board ice40-hx8k-evn, with --fold auto --ii 256 is expected "
                    "to fit)")
    # A measurement just over the device at II 32 moves the suggestion past II 32.
    fold, _ = auto_fold(R64, 32)
    ii = suggest_ii(R64, fold, needed=5300, available=5280, failed=True)
    assert ii is not None and ii > 32
    assert [str(f) for f in auto_fold(R64, ii)[0]] != [str(f) for f in fold]


@pytest.mark.parametrize(("target", "parallel"), [("ecp5-85k", True), ("ice40-up5k", False)])
def test_fit_folding_folds_only_when_the_estimate_needs_it(target, parallel):
    folding, ii = fit.fit_folding(R64, target)
    tgt = targets.TARGETS[target]
    assert (ii == 1) is parallel
    assert estimate.estimate_logic(R64, folding, tgt.family) <= 0.9 * tgt.lut4
    assert estimate.estimate_brams(R64, folding, tgt.family) <= tgt.bram
    if not parallel:
        smaller, _ = auto_fold(R64, ii // 2)
        assert estimate.estimate_logic(R64, smaller, tgt.family) > 0.9 * tgt.lut4


def test_fit_folding_counts_flip_flops(monkeypatch):
    # tfc on 28x28 inputs: measured to place on the UP5K at II 512 (2662 FF, pipeline 2) now
    # that its input vectors are in memory; with a flip-flop limit under its estimate no
    # folding is proposed (the wrapper's two 784-bit registers stay at every II).
    model = random_model([784, 64, 64, 64, 10], seed=0)
    folding, ii = fit.fit_folding(model, "ice40-up5k", pipeline=2)
    ffs = estimate.estimate_ffs(model, folding, 2)
    assert ii == 512 and ffs <= fit.ICE40_FF_SHARE_LIMIT * 5280
    monkeypatch.setattr(fit, "ICE40_FF_SHARE_LIMIT", 0.9 * ffs / 5280)
    with pytest.raises(DoesNotFit, match=r"^no folding of this network is expected to fit the "
                                         r"ice40-up5k: at its slowest folding \(II \d+\) it is "
                                         r"estimated at \d+ logic cells of 5280 and \d+ block "
                                         r"RAMs of 30; choose a larger target \(ice40-hx8k, "
                                         r"board ice40-hx8k-evn, with --fold auto --ii \d+ is "
                                         r"expected to fit\)$"):
        fit.fit_folding(model, "ice40-up5k", pipeline=2)


def test_fit_folding_moves_flip_flop_heavy_networks_to_ecp5():
    model = random_model([784, 64, 64, 64, 10], seed=0)
    folding, ii = fit.fit_folding(model, "ecp5-25k")
    assert ii > 1
    assert estimate.estimate_logic(model, folding, "ecp5") <= 0.9 * 24288


def test_fit_folding_gives_up_on_a_network_too_large_for_any_folding():
    # 16.8 Mbit of weights: no block RAM of any target holds them, so no larger target is named
    # (8230: 8192 for the ROMs, 28 for input memories, 10 for the threshold table's 4096 words).
    with pytest.raises(DoesNotFit) as info:
        fit.fit_folding(random_model([4096, 4096, 10], seed=0), "ice40-up5k")
    assert str(info.value) == (
        "no folding of this network is expected to fit the ice40-up5k: at its slowest folding "
        "(II 16777216) it is estimated at 10306 logic cells of 5280 and 8230 block RAMs of 30; "
        "no supported target is expected to fit it")
    with pytest.raises(DoesNotFit, match=r"^no folding of this network is expected to fit the "
                                         r"ice40-up5k$"):
        fit.fit_folding(random_model([4096, 4096, 10], seed=0), "ice40-up5k", advise=False)


def test_roms_over_block_ram_but_small_in_logic_are_left_to_yosys():
    model = random_model([64, 32, 10], seed=0)
    folding = [LayerFold(4, 16), LayerFold(1, 32)]          # 6 block RAMs, or LUT4 of ROM:
    # 64 x 32 and 32 x 10; on iCE40 0.15 words - 0.6 per bit past 16 words, on ECP5 a LUT4 per
    # bit and 16 words (measured on ROMs alone, bench/README.md).
    assert estimate.estimate_rom_luts(model, folding) == round(64 * (0.15 * 32 - 0.6) + 32)
    assert estimate.estimate_rom_luts(model, folding, "ecp5") == 64 * 2 + 32 * 1
    tgt = dataclasses.replace(targets.TARGETS["ice40-up5k"], bram=1)
    assert not fit.rom_does_not_fit(model, folding, tgt)
    assert fit.rom_does_not_fit(model, folding, dataclasses.replace(tgt, lut4=300))


def test_ecp5_fit_keeps_the_block_rams_read_per_cycle_routable():
    # sfc: II 64 needs 146-148 DP16KD (fits the 85k's 208, has not routed since the weight-ROM
    # register); II 128 needs 75 and routes.
    model = random_model([784, 256, 256, 256, 10], seed=0)
    at64, _ = auto_fold(model, 64)
    assert estimate.ECP5_ROUTABLE_BRAMS < estimate.estimate_brams(model, at64, "ecp5") <= 208
    folding, ii = fit.fit_folding(model, "ecp5-85k", pipeline=2)
    assert ii == 128
    assert estimate.estimate_brams_used(model, folding, "ecp5") <= estimate.ECP5_ROUTABLE_BRAMS


def test_ecp5_block_ram_limit_ignores_roms_that_go_to_luts():
    # tfc on mnist5k at II 8: 8-word ROMs, 6272 bits wide, which Yosys keeps in LUTs (0 DP16KD
    # measured); they would need 175+ block RAMs, so counting them would push the fit to II 32.
    model = random_model([784, 64, 64, 64, 10], seed=0)
    at8, _ = auto_fold(model, 8)
    assert estimate.estimate_brams(model, at8, "ecp5") > estimate.ECP5_ROUTABLE_BRAMS
    assert estimate.estimate_brams_used(model, at8, "ecp5") == 0
    # At II 4 the ROMs have 4 words: a few LUTs however wide (LUT_ROM_WORDS), not asked of the
    # block RAMs at all (412 at best, more than the 85k's 208), so the fit goes on to II 4.
    folding, ii = fit.fit_folding(model, "ecp5-85k", pipeline=2)
    assert (ii, estimate.estimate_brams(model, folding, "ecp5")) == (4, 412)
    assert estimate.fit_brams(model, folding, "ecp5") == 0


def test_fit_brams_leaves_out_only_roms_of_a_few_words():
    model = random_model([784, 64, 64, 64, 10], seed=0)
    for ii, words in [(4, 4), (8, 8), (32, 32)]:
        folding, _ = auto_fold(model, ii)
        assert {depth for _, depth in estimate._roms(model, folding)} == {words}
        expected = 0 if words <= estimate.LUT_ROM_WORDS else estimate.estimate_brams(
            model, folding, "ecp5")
        assert estimate.fit_brams(model, folding, "ecp5") == expected


def _placer(outcomes):
    """A ``place`` function for :func:`fit_by_placement` that answers from ``outcomes`` (True:
    placed, False: NotPlaced, an exception: raised) and records the foldings it was given."""
    seen = []

    def place(fold):
        seen.append(",".join(str(f) for f in fold))
        outcome = outcomes[len(seen) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        if not outcome:
            raise NotPlaced(f"nextpnr could not place {seen[-1]}; try something", 6000)
        return {"placed": seen[-1]}
    return place, seen


def test_fit_by_placement_keeps_the_estimates_choice_when_it_places():
    model = random_model([784, 64, 64, 64, 10], seed=0)
    place, seen = _placer([True])
    result, fold, attempts = fit_by_placement(model, "ice40-up5k", place, pipeline=2)
    first, ii = fit_folding(model, "ice40-up5k", pipeline=2)
    assert seen == [",".join(str(f) for f in first)] and fold == first
    assert result == {"placed": seen[0]}
    assert attempts == [{"folding": seen[0], "ii": ii, "placed": True}]


def test_fit_by_placement_tries_slower_foldings_until_one_places():
    model = random_model([784, 64, 64, 64, 10], seed=0)
    place, seen = _placer([False, False, True])
    messages = []
    _, fold, attempts = fit_by_placement(model, "ice40-up5k", place, pipeline=2,
                                         progress=messages.append)
    assert [a["placed"] for a in attempts] == [False, False, True]
    assert [a["folding"] for a in attempts] == seen and len(set(seen)) == 3
    iis = [a["ii"] for a in attempts]
    assert iis == sorted(iis) and len(set(iis)) == 3
    logic = [estimate_logic(model, resolve_folding(model, s), "ice40", 2) for s in seen]
    assert logic == sorted(logic, reverse=True) and len(set(logic)) == 3
    assert attempts[0]["reason"].startswith("nextpnr could not place")
    assert sum("did not place" in m for m in messages) == 2


def test_fit_by_placement_gives_up_once_after_the_attempt_limit():
    model = random_model([784, 64, 64, 64, 10], seed=0)
    place, seen = _placer([False] * FIT_ATTEMPTS)
    with pytest.raises(DoesNotFit, match=rf"^no folding of this network placed on the "
                                         rf"ice40-up5k \(the limit of {FIT_ATTEMPTS} "
                                         rf"attempts\): tried .* \(II \d+\), .*; choose a "
                                         rf"larger target") as e:
        fit_by_placement(model, "ice40-up5k", place, pipeline=2)
    assert len(seen) == FIT_ATTEMPTS and not isinstance(e.value, NotPlaced)
    assert str(e.value).count("(II ") == FIT_ATTEMPTS


def test_fit_by_placement_stops_when_no_slower_folding_is_expected_to_need_less():
    # Folding a tiny network adds ROMs and sequencers: no slower folding is estimated smaller.
    model = random_model([6, 3, 2], seed=0)
    place, seen = _placer([False] * 20)
    with pytest.raises(DoesNotFit, match=r"^no folding of this network placed on the "
                                         r"ice40-up5k: tried 3x6,2x3 \(II 1\); "):
        fit_by_placement(model, "ice40-up5k", place)
    assert seen == ["3x6,2x3"]


def test_fit_by_placement_does_not_fold_further_for_a_missed_clock():
    model = random_model([784, 64, 64, 64, 10], seed=0)
    place, seen = _placer([DoesNotFit("the design reaches 9.0 MHz")])
    with pytest.raises(DoesNotFit, match="^the design reaches 9.0 MHz$"):
        fit_by_placement(model, "ice40-up5k", place)
    assert len(seen) == 1


@pytest.mark.slow
def test_synth_fold_fit_moves_on_from_a_folding_that_does_not_fit(monkeypatch, tmp_path):
    # Real Yosys and nextpnr on a small network, with the UP5K's logic capacity lowered to 2400
    # cells (the search reads it from the target) so that the tools take seconds, not minutes:
    # the estimate's first choice, forced to II 8, counts about 2900 cells in Yosys, so the
    # search must report it and place the next slower folding (II 16: about 2000 cells).
    from bnnflow.boards.synth import synthesize

    small = dataclasses.replace(targets.TARGETS["ice40-up5k"], lut4=2400)
    monkeypatch.setitem(targets.TARGETS, "ice40-up5k", small)
    model = random_model([48, 32, 32, 10], seed=0)
    monkeypatch.setattr(fit, "fit_folding", lambda m, t, pipeline=0: auto_fold(m, 8))
    report = synthesize(model, "ice40-up5k", "fit", pipeline=2, out_dir=tmp_path)
    first, second = report["attempts"]
    assert first["ii"] == 8 and first["placed"] is False
    # Refused on Yosys' counts (the estimate alone refuses only past twice the capacity).
    assert first["reason"].startswith("the design needs")
    assert "the ice40-up5k has 2400" in first["reason"]
    assert second == {"folding": report["folding"], "ii": report["ii"], "placed": True}
    assert report["ii"] > 8 and report["logic_cells"] <= 2400
    assert json.loads((tmp_path / "report.json").read_text())["attempts"] == report["attempts"]


def test_verilog_fold_fit_needs_a_target(tmp_path, capsys):
    from bnnflow.cli import main
    from bnnflow.model import artifact

    artifact.save(random_model([16, 8, 4], seed=0), tmp_path / "m.bnn")
    assert main(["verilog", str(tmp_path / "m.bnn"), "--fold", "fit", "-o",
                 str(tmp_path / "x.v")]) == 2
    assert capsys.readouterr().err == "error: --fold fit needs --target (the device to place on)\n"
    assert not (tmp_path / "x.v").exists()


def test_verilog_fold_fit_writes_the_folding_that_placed(tmp_path, capsys):
    from bnnflow.cli import main
    from bnnflow.model import artifact

    model = random_model([16, 8, 4], seed=0)
    artifact.save(model, tmp_path / "m.bnn")
    assert main(["verilog", str(tmp_path / "m.bnn"), "--fold", "fit", "--target", "ice40-up5k",
                 "-o", str(tmp_path / "x.v")]) == 0
    sidecar = json.loads((tmp_path / "x.json").read_text())
    folding, ii = fit_folding(model, "ice40-up5k")
    assert sidecar["folding"] == ",".join(str(f) for f in folding) and sidecar["ii"] == ii
    assert f"fit: {sidecar['folding']} (II {ii}) placed\n" in capsys.readouterr().out
