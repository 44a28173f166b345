"""Open-toolchain synthesis and board builds (no torch here).

* :mod:`.synth` (``bnnflow synth``): out-of-context Yosys + nextpnr runs and their report;
  :mod:`.estimate` is the resource model of a folding, :mod:`.fit` the choice of a folding
  that fits a target, :mod:`.wrapper` the serial I/O fixture around the network,
  :mod:`.targets` the devices, :mod:`.tools` the tool lookup and logged steps.
* :mod:`.build` (``bnnflow build``): bitstreams for amaranth-boards platforms with the UART
  inference top of :mod:`.uart_top` (UART in :mod:`.uart`).
* :mod:`.flash` (``bnnflow flash``): programs a board with a build's bitstream through
  openFPGALoader.
* :mod:`.host` (``bnnflow run-board``): the host side, over a serial port or the simulator.
"""
