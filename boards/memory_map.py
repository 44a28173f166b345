"""Where Yosys puts a memory: its ``memory_libmap`` cost rule for the iCE40 and ECP5 cells.

``synth_ice40`` and ``synth_ecp5`` map every memory to the cheapest of the RAM cells their
libraries list, or to logic (flip-flops and multiplexers) when no cell is cheaper than one cost
unit per RAM bit (1/16 per ROM bit). A cell's cost is its library cost times the cells needed,
plus half a unit per bit multiplexed between cells, half per write enable decoded, and two per
point of emulated behaviour: 1 for a read port of its own, 3 for read-during-write transparency
the cell lacks (the window and max-pool line memories read what is written in the same cycle).
The libraries (Yosys 0.70's ``ice40/brams.txt``, ``lattice/brams_16kd.txt`` and
``lattice/lutrams_trellis.txt``):

* iCE40 ``SB_RAM40_4K``: cost 64, 2048 x 2, 1024 x 4, 512 x 8 or 256 x 16 (16 bits only with
  per-bit write enables), synchronous read, no transparency;
* ECP5 ``DP16KD``: cost 128, 16384 x 1 ... 1024 x 18; ``PDPW16KD`` the same with 512 x 36 reads
  and 36-bit writes; synchronous read, no transparency between its ports;
* ECP5 ``TRELLIS_DPR16X4`` (LUT RAM, RAMs only): cost 4, 16 x 4, asynchronous read (Yosys
  adds the read register in flip-flops).

:func:`placement` applies that rule to a memory of one write and one read port (every memory
bnnflow builds); ``bench/memory_map.py`` compares it with Yosys' choices.
"""

import math
from dataclasses import dataclass

__all__ = ["placement", "Placement"]

_FACTOR_MUX = 0.5
_FACTOR_DEMUX = 0.5
_FACTOR_EMU = 2
_LOGIC_COST_RAM = 1.0
_LOGIC_COST_ROM = 1.0 / 16

#: Per family: (cell, kind, cost, shapes as (words, width, byte), whether ROMs may use it).
#: ``byte`` is the write-enable granularity data is padded to (the width itself when it has
#: none): the iCE40's 16-bit mode has per-bit enables, the ECP5 block RAMs 9-bit bytes.
_CELLS = {
    "ice40": [("SB_RAM40_4K", "bram", 64, ((2048, 2, 2), (1024, 4, 4), (512, 8, 8),
                                           (256, 16, 1)), True)],
    "ecp5": [("DP16KD", "bram", 128, ((16384, 1, 1), (8192, 2, 2), (4096, 4, 4),
                                      (2048, 9, 9), (1024, 18, 9)), True),
             ("PDPW16KD", "bram", 128, ((512, 36, 9),), True),
             ("TRELLIS_DPR16X4", "lutram", 4, ((16, 4, 4),), False)],
}


@dataclass(frozen=True)
class Placement:
    """Where a memory goes: ``kind`` ``"logic"``, ``"bram"`` or ``"lutram"``, ``cell`` the
    primitive (``None`` for logic) and ``cells`` how many of it."""

    kind: str
    cell: str | None = None
    cells: int = 0


def _emulation(kind, rom, transparent, no_rw_check=False):
    """Yosys' emulation score: 1 for a read port of its own; a block RAM's read-old port
    (read-first and transparency emulation) 3 + 3 more, a transparent one 3 more; LUT RAM
    reads asynchronously (its read register is free) and only emulates transparency. A memory
    marked ``no_rw_check`` (reads and writes never meet on an address) emulates nothing."""
    if rom or no_rw_check:
        return 1
    if kind == "lutram":
        return 1 + (3 if transparent else 0)
    return 4 if transparent else 7


def _cell_cost(cost, kind, shape, width, depth, rom, transparent, no_rw_check):
    words, unit, byte = shape
    blocks = math.ceil(depth / words)                       # address ranges, muxed on read
    padded = math.ceil(width / byte) * byte
    cells = math.ceil(blocks * padded / unit)
    total = (cost * cells + _FACTOR_MUX * (blocks - 1) * width
             + (_FACTOR_DEMUX * blocks if blocks > 1 and not rom else 0)
             + _FACTOR_EMU * _emulation(kind, rom, transparent, no_rw_check))
    return total, cells


def placement(family, width, depth, *, rom=False, transparent=False, no_rw_check=False):
    """Where Yosys maps a ``width x depth`` memory on ``family`` (module docstring).

    Parameters
    ----------
    family : {"ice40", "ecp5"}
    width, depth : int
        Bits per word, words.
    rom : bool
        No write port (a weight ROM): logic costs 1/16 per bit, and LUT RAM is not used.
    transparent : bool
        The read port returns what is written in the same cycle.
    no_rw_check : bool
        The memory carries Yosys' ``no_rw_check`` attribute: its reads and writes never meet
        on an address, so no read-during-write behaviour is emulated (the pixel window's ring).

    Returns
    -------
    Placement
    """
    if family not in _CELLS:
        raise ValueError(f"family must be one of {', '.join(_CELLS)}, not {family!r}")
    # Logic is kept on a tie.
    best, choice = width * depth * (_LOGIC_COST_ROM if rom else _LOGIC_COST_RAM), None
    for cell, kind, cost, shapes, roms in _CELLS[family]:
        if rom and not roms:
            continue
        for shape in shapes:
            total, cells = _cell_cost(cost, kind, shape, width, depth, rom, transparent,
                                      no_rw_check)
            if total < best:
                best, choice = total, Placement(kind, cell, cells)
    return choice or Placement("logic")
