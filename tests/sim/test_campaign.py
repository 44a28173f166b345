"""``bnnflow verify-campaign``: random networks and foldings, the commands that repeat a check,
cached re-runs, fault campaigns where every design fails, and one-line errors."""

import json
import shlex

import numpy as np
import pytest

from bnnflow import dask_pool
from bnnflow.cli import main
from bnnflow.model.artifact import load
from bnnflow.model.random_net import random_model
from bnnflow.sim.campaign import CampaignError, Check, parse_sizes, plan_campaign


@pytest.fixture(scope="module")
def cluster():
    """A 2-worker cluster of its own, reached by address like a remote one."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                      dashboard_address=":0") as cluster:
        yield cluster


def test_sizes_are_widths_separated_by_dashes():
    assert [s.widths for s in parse_sizes("16-8-4, 37-13-11-5")] == [(16, 8, 4),
                                                                       (37, 13, 11, 5)]
    for text in ("16", "16-0-4", "16-8-x", "16-8,"):
        with pytest.raises(CampaignError, match=rf"^--sizes must be networks like 16-8-4 "
                                                rf"\(input width, then each layer's neurons\) "
                                                rf"or 8x8x2:c4k3-p2-d6-3 \(a conv network\), "
                                                rf"comma separated, not '{text}'$"):
            parse_sizes(text)
    with pytest.raises(CampaignError, match=r"^--sizes: stage 'q2' of '8x8x1:q2-3' must be "):
        parse_sizes("16-8-4,8x8x1:q2-3")


def test_the_plan_writes_each_network_and_its_inputs(tmp_path):
    plan = plan_campaign(tmp_path, networks=3, sizes=[(16, 8, 4), (20, 6, 6, 2)], foldings=2,
                         pipelines=[0, 2], stall=0.3, stall_seeds=2, images=5, seed=7)
    assert len(plan) == 3 * 2 * 2 * 2
    check, files = plan[-1]
    assert (check.net, check.widths, check.pipeline, check.stall, check.seed) == (
        2, (16, 8, 4), 2, 0.3, 1)
    model = load(files["model"])
    assert model.widths == random_model([16, 8, 4], seed=9).widths
    assert np.load(files["inputs"]).shape == (5, 16)
    assert sorted(p.name for p in (tmp_path / "nets").iterdir()) == [
        f"net_000{i}{suffix}" for i in range(3) for suffix in (".bnn", "_inputs.npy")]
    assert plan_campaign(tmp_path, networks=3, sizes=[(16, 8, 4), (20, 6, 6, 2)], foldings=2,
                         pipelines=[0, 2], stall=0.3, stall_seeds=2, images=5,
                         seed=7) == plan


def test_the_command_repeats_the_check():
    check = Check(7, (16, 8, 4), "3x5,2x8", 2, 0.25, 1)
    assert check.command("/o d", "amaranth", 16, "drop_ready:0") == (
        "bnnflow verify '/o d/nets/net_0007.bnn' --sim amaranth --inputs "
        "'/o d/nets/net_0007_inputs.npy' --images 16 --fold 3x5,2x8 --pipeline 2 --stall 0.25 "
        "--seed 1 --fault drop_ready:0")


def _records(out):
    return json.loads((out / "results.json").read_text())["records"]


ARGS = ["--random", "2", "--sizes", "16-8-4,12-6-6-3", "--pipeline", "0,1", "--images", "6"]


def test_a_campaign_passes_and_a_second_run_is_all_cached(tmp_path, capsys):
    assert main(["verify-campaign", *ARGS, "--workers", "1", "--out", str(tmp_path)]) == 0
    records = _records(tmp_path)
    assert len(records) == 4
    assert all(r["status"] == "passed" and r["mismatches"] == 0 and r["cached"] is False
               and r["ii_measured"] == r["ii_expected"] for r in records)
    out = capsys.readouterr()
    assert "verify-campaign: 4 verifications, 4 passed, 0 did not" in out.out
    assert "[4/4] net 1 12-6-6-3" in out.err
    assert main(["verify-campaign", *ARGS, "--scheduler", "tcp://127.0.0.1:9", "--out",
                 str(tmp_path)]) == 0        # all cached: no cluster needed
    again = _records(tmp_path)
    assert all(r["cached"] for r in again)
    assert [{**r, "cached": False} for r in again] == records
    assert "passed 4, did not pass 0" in (tmp_path / "results.md").read_text()


@pytest.mark.parametrize("kind", [["--weights", "ternary"], ["--act-bits", "2"],
                                  ["--input-bits", "8", "--act-bits", "3", "--weights", "ternary"]])
def test_campaigns_of_every_kind_pass_and_a_fault_is_seen(tmp_path, capsys, cluster, kind):
    argv = ["verify-campaign", "--random", "2", "--sizes", "13-7-5-3", "--pipeline", "0,1",
            "--images", "6", *kind, "--scheduler", cluster.scheduler_address]
    assert main([*argv, "--out", str(tmp_path / "ok")]) == 0
    records = _records(tmp_path / "ok")
    assert len(records) == 4 and all(r["status"] == "passed" and r["mismatches"] == 0
                                     for r in records)
    model = load(tmp_path / "ok" / "nets" / "net_0001.bnn")
    bits = np.load(tmp_path / "ok" / "nets" / "net_0001_inputs.npy")
    kinds = [layer.kind for layer in model.layers]
    assert kinds[:2] == 2 * ["ternary_dense" if "ternary" in kind else "binary_dense"]
    if "--act-bits" in kind:
        levels = int(kind[kind.index("--act-bits") + 1])
        assert model.layers[1].in_bits == levels
    top = 255 if "--input-bits" in kind else 1
    assert model.input.bits == (8 if top == 255 else 1) and bits.max() <= top
    assert bits.max() > 1 or top == 1
    results = (tmp_path / "ok" / "results.md").read_text()
    assert f"{'ternary' if 'ternary' in kind else 'binary'} weights" in results
    # The same networks with a dropped ready: the checker sees it in every design.
    assert main([*argv, "--fault", "drop_ready:0", "--out", str(tmp_path / "bad")]) == 0
    assert all(r["status"] == "mismatch" for r in _records(tmp_path / "bad"))
    capsys.readouterr()


def test_conv_campaigns_pass_and_a_dropped_ready_is_seen(tmp_path, capsys, cluster):
    argv = ["verify-campaign", "--random", "2", "--sizes",
            "6x6x2:c3k3-c2k2-p2-4,5x5x1:c2k2-d5-3", "--pipeline", "0,1", "--images", "4",
            "--weights", "ternary", "--act-bits", "2", "--input-bits", "8", "--scheduler",
            cluster.scheduler_address]
    assert main([*argv, "--out", str(tmp_path / "ok")]) == 0
    records = _records(tmp_path / "ok")
    assert len(records) == 4 and all(r["status"] == "passed" for r in records)
    assert {r["widths"][0] for r in records} == {"6x6x2:c3k3-c2k2-p2-4", "5x5x1:c2k2-d5-3"}
    model = load(tmp_path / "ok" / "nets" / "net_0000.bnn")
    assert [layer.kind for layer in model.layers] == ["ternary_conv2d", "ternary_conv2d",
                                                      "maxpool2d", "binary_dense"]
    assert np.load(tmp_path / "ok" / "nets" / "net_0000_inputs.npy").shape == (4, 72)
    assert main([*argv, "--fault", "drop_ready:0", "--out", str(tmp_path / "bad")]) == 0
    assert all(r["status"] == "mismatch" for r in _records(tmp_path / "bad"))
    assert "[4/4] net" in capsys.readouterr().err


def test_with_a_dropped_ready_every_design_fails_with_a_command_that_repeats_it(
        tmp_path, capsys, cluster):
    status = main(["verify-campaign", *ARGS, "--fault", "drop_ready:0", "--scheduler",
                   cluster.scheduler_address, "--workers", "3", "--out", str(tmp_path)])
    assert status == 0                  # the fault was seen in every design
    records = _records(tmp_path)
    assert len(records) == 4 and all(r["status"] == "mismatch" for r in records)
    out, err = capsys.readouterr()
    assert "note: --workers is ignored with --scheduler" in err
    assert "with --fault drop_ready:0: 4 of 4 designs failed as expected" in out
    commands = [line.split("repeat with: ", 1)[1] for line in out.splitlines()
                if "repeat with: " in line]
    assert commands == [r["command"] for r in records]
    argv = shlex.split(commands[0])
    assert argv[:2] == ["bnnflow", "verify"] and "--fault" in argv
    assert main([*argv[1:], "--quiet"]) == 1
    rep_out = capsys.readouterr().out
    assert "FAIL" in rep_out and "first mismatch" in rep_out


@pytest.mark.parametrize(("argv", "message"), [
    (["--sizes", "16"], "error: --sizes must be networks like 16-8-4"),
    (["--pipeline", "0,x"], "error: --pipeline must be a comma-separated list of integers >= "
                            "0, like 0,2, not '0,x'"),
    (["--random", "0"], "error: --random must be a positive integer, not 0"),
    (["--stall", "1"], "error: --stall must be a probability in [0, 1), not 1"),
    (["--fault", "drop_ready"], "error: --fault must be drop_ready:J with J a layer index or "
                                "swap_output:A,B"),
    (["--fault", "drop_ready:2"], "error: --fault drop_ready:2 needs a layer 2 followed by "
                                  "another, and 16-8-4 has 2 layers"),
    (["--sizes", "16-4", "--fault", "drop_ready:0"], "error: --fault drop_ready:0 needs a "
                                                     "layer 0 followed by another, and 16-4 "
                                                     "has 1 layer"),
    (["--fault", "swap_output:3,3"], "error: fault must be None, ('drop_ready', j) with j in "
                                     "0..1 or ('swap_output', a, b) with output bits a != b "
                                     "(drop_ready:J or swap_output:A,B on the command line), "
                                     "not swap_output:3,3 (network 16-8-4)"),
    (["--fault", "swap_output:0,999"], "error: fault swap_output:0,999: the output has bits "
                                       "0..17 (network 16-8-4)"),
    (["--seed", "-1"], "error: --seed must be an integer >= 0, not -1"),
    (["--act-bits", "0"], "error: --act-bits must be an integer in 1..8, not 0"),
    (["--sizes", "4x4x1:c2k5-3"], "error: conv0: kernel 5x5 is larger than the 4x4 input map "
                                  "(network 4x4x1:c2k5-3)"),
    (["--sizes", "16-8-4,6x6x2:c3k3-p2-4", "--fault", "drop_ready:0"],
     "error: --fault drop_ready:0: layer 1 of 6x6x2:c3k3-p2-4 is a max-pool, which is never "
     "busy, so a dropped ready cannot show; choose a layer followed by a conv or dense layer"),
    (["--input-bits", "9"], "error: --input-bits must be an integer in 1..8, not 9"),
    (["--scheduler", "tcp://127.0.0.1:9"], "error: cannot reach the Dask scheduler at "
                                           "tcp://127.0.0.1:9 ("),
    (["--out", "/proc/nope"], "error: cannot write /proc/nope: cannot create folders in /proc"),
])
def test_bad_input_is_one_line_and_exit_status_2(tmp_path, capsys, monkeypatch, argv,
                                                 message):
    monkeypatch.setattr(dask_pool, "CONNECT_TIMEOUT", 1)
    options = {"--random": "1", "--sizes": "16-8-4", "--out": str(tmp_path / "out")}
    options.update(zip(argv[::2], argv[1::2], strict=True))
    status = main(["verify-campaign", *(x for item in options.items() for x in item)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and err[0].startswith(message)
    assert not (tmp_path / "out").exists()   # an unreachable scheduler wrote the nets before


def test_ctrl_c_stops_the_campaign_without_a_traceback_from_the_workers(tmp_path):
    # Ctrl-C reaches the whole process group: each Dask worker printed a KeyboardInterrupt
    # traceback while bnnflow was already closing the cluster.
    import os
    import signal
    import subprocess
    import sys
    import time

    # As at a terminal: a suite started in the background of a non-interactive shell ignores
    # SIGINT, a child inherits that, and Python then installs no KeyboardInterrupt handler.
    proc = subprocess.Popen([sys.executable, "-m", "bnnflow", "verify-campaign", "--random",
                             "100", "--workers", "2", "--out", str(tmp_path / "c")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (tmp_path / "c" / "runs").is_dir() or not any((tmp_path / "c" / "runs").iterdir()):
        if proc.poll() is not None:
            pytest.fail(f"the campaign ended before any run, exit {proc.returncode}: "
                        f"{proc.stderr.read()}")
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    assert err.rstrip().endswith("error: interrupted")


def test_a_folder_of_another_campaign_is_not_overwritten(tmp_path):
    # Its records' "repeat with" commands named nets/net_0000.bnn, which a campaign of another
    # --seed replaced.
    plan_campaign(tmp_path, networks=2, sizes=[(16, 8, 4)], seed=0)
    before = (tmp_path / "nets" / "net_0000.bnn").read_bytes()
    plan_campaign(tmp_path, networks=3, sizes=[(16, 8, 4)], seed=0)      # the same, extended
    for other in ({"seed": 5}, {"sizes": [(12, 6, 3)]}, {"images": 9},
                  {"kind": {"ternary": True}}, {"kind": {"input_bits": 8}}):
        with pytest.raises(CampaignError, match=r"holds network 0 of another campaign \(other "
                                                r"--seed, --sizes, --images, --weights, "
                                                r"--act-bits or --input-bits\); choose "
                                                r"another --out"):
            plan_campaign(tmp_path, **{"networks": 2, "sizes": [(16, 8, 4)], "seed": 0,
                                       **other})
    assert (tmp_path / "nets" / "net_0000.bnn").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "nets").iterdir()) == [
        f"net_000{i}{suffix}" for i in range(3) for suffix in (".bnn", "_inputs.npy")]
