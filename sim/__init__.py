"""Cycle-accurate simulation of generated hardware against the golden model (no torch here).

Modules:

* :mod:`.verify`: :func:`~bnnflow.sim.verify.run_verify`, the whole check;
* :mod:`.verify_report`: the report it returns and writes;
* :mod:`.diagnose`: the debug-tap rerun that names the first layer that differs;
* :mod:`.backend`: the one back-end interface (``SimJob`` in, ``SimResult`` out) and the
  ``BACKENDS`` registry;
* :mod:`.cli_verify`: the ``bnnflow verify`` command;
* :mod:`.stimulus`: driver, monitor, timing measurement and scoreboard, shared by every
  simulator;
* :mod:`.amaranth_sim`: the bench in Amaranth's simulator;
* :mod:`.cocotb_sim` and :mod:`.cocotb_bench`: builds and runs on Verilator and Icarus through
  cocotb's Python runner, and the cocotb test that runs inside the simulator;
* :mod:`.direct`: the ``verilator-direct`` back end, a C++ harness with no Python per cycle;
* :mod:`.build_cache`: the build directories of the back ends that compile a design;
* :mod:`.verilator_cache`: Verilator run-time objects shared between builds;
* :mod:`.tools`: finding the simulators, with the install command when one is missing.
"""
