# amaranth: UnusedElaboratable=no
"""Proofs on Yosys' mapped netlist of the whole network (``prove --netlist``)."""

import pytest

from bnnflow.cli import main
from bnnflow.model.random_net import random_model
from bnnflow.sim.prove import proof_targets, prove_target
from bnnflow.sim.prove_netlist import NetlistInstance, netlist_target


def test_command_proves_the_ice40_netlist(tmp_path, capsys):
    code = main(["prove", "--sizes", "6x3", "--fold", "3x2", "--pipeline", "1", "--netlist",
                 "ice40", "--trace-dir", str(tmp_path / "t")])
    captured = capsys.readouterr()
    assert code == 0
    # One target, the same depth and cover step as the RTL network's proof (test_prove.py).
    assert "proving 1 target (hold, order, reference)" in captured.err
    assert captured.out.startswith("network (ice40 netlist): hold, order, reference bounded to "
                                   "depth 18 (second image checked at step 13)")
    assert captured.out.count("\n") == 1 and not (tmp_path / "t").exists()


def test_command_fails_on_the_netlist_of_a_faulty_design(tmp_path, capsys):
    # Every fault on both families: tests/sim/test_mutations.py.
    code = main(["prove", "--sizes", "6x3", "--fold", "3x2", "--pipeline", "1", "--netlist",
                 "ice40", "--fault", "drop_ready:0", "--trace-dir", str(tmp_path)])
    assert code == 1
    assert ("network (ice40 netlist): FAILED at step 16: reference (hold, order held to step "
            "15)") in capsys.readouterr().out
    assert (tmp_path / "network_ice40_netlist.vcd").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_ternary_weights_and_2_bit_levels_are_proved_on_the_netlist(family):
    model = random_model([5, 3, 2], seed=2, ternary=True, act_bits=2, input_bits=2)
    network = proof_targets(model, "1x5,2x3", 1, rom_register=family == "ecp5")[-1]
    result = prove_target(netlist_target(network, family), induction=False)
    assert result.status == "bounded" and result.covered_at is not None


def test_the_netlist_keeps_the_network_ports():
    model = random_model([6, 3], seed=0)
    target = netlist_target(proof_targets(model, "3x2")[-1], "ice40")
    assert isinstance(target.dut, NetlistInstance)
    assert (len(target.dut.i.payload), len(target.dut.o.payload)) == (6, target.out_width)
    assert "module bnnflow_top(" in target.sources and "module SB_LUT4" in target.sources


def test_an_unknown_family_is_refused():
    target = proof_targets(random_model([6, 3], seed=0))[-1]
    with pytest.raises(ValueError, match="netlist family must be one of ice40, ecp5, not 'xc7'"):
        netlist_target(target, "xc7")


def test_command_builds_the_network_with_the_rom_register_asked_for(monkeypatch):
    # --rom-register reaches the design (the ECP5 proofs above build it through the API).
    from bnnflow.sim import prove

    seen = {}

    def stop(*args, **kwargs):
        seen.update(kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(prove, "proof_targets", stop)
    assert main(["prove", "--sizes", "6x3", "--netlist", "ecp5", "--rom-register"]) == 2
    assert seen["rom_register"] is True


def test_command_refuses_an_unknown_family(capsys):
    with pytest.raises(SystemExit) as e:
        main(["prove", "--sizes", "6x3", "--netlist", "gowin"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--netlist: invalid choice: 'gowin'" in err and err.count("\n") == 1
