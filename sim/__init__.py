"""Cycle-accurate simulation of generated hardware against the golden model (no torch here).

Modules:

* :mod:`.verify`: :func:`~bnnflow.sim.verify.run_verify`, the whole check and its report;
* :mod:`.cli_verify`: the ``bnnflow verify`` command;
* :mod:`.stimulus`: driver, monitor, timing measurement and scoreboard, shared by every
  simulator;
* :mod:`.amaranth_sim`: the bench in Amaranth's simulator;
* :mod:`.cocotb_sim` and :mod:`.cocotb_bench`: builds and runs on Verilator and Icarus through
  cocotb's Python runner, and the cocotb test that runs inside the simulator;
* :mod:`.verilator_cache`: Verilator run-time objects shared between builds;
* :mod:`.tools`: finding the simulators, with the install command when one is missing.
"""
