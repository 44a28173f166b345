"""Verilog generation for a whole network: reproducible text plus a JSON sidecar.

:func:`generate` returns the Verilog of :class:`bnnflow.hw.top.BnnTop` (converted with
``emit_src=False``, so the same model, folding and options give the same bytes) and the sidecar
dict; :func:`write_verilog` writes ``OUT.v`` and ``OUT.json`` atomically. Fully parallel layers
cost generation time and memory in proportion to their ``PE * SIMD`` XNOR gates;
:func:`size_estimate` predicts them and :func:`generate` warns (:class:`LargeDesignWarning`)
before starting a design above :data:`WARN_SYNAPSES`.

**Time 0 in any language mode.** Yosys writes each combinational block as ``always @*`` with a
first statement reading a register declared ``= 0``, so that the block runs once at time 0.
In Verilog-2005 that initializer is an event; in SystemVerilog (Icarus ``-g2012``, cocotb's
default) declaration initializers make none, so a block whose inputs never change before the
first image (a threshold select on a neuron-fold counter still at 0) keeps X, and the first
image came out as X. :func:`time_zero_events` adds ``initial r <= 1'h1;`` for each such
register: a non-blocking update happens after every ``always`` block has reached its event
control, so each runs at time 0 under both standards. It sits in ```ifndef VERILATOR``:
Verilator evaluates all logic at start anyway and would warn (``INITIALDLY``) about it.
"""

import json
import re
import warnings
from pathlib import Path

from ..fileio import atomic_path
from .folding import resolve_folding

__all__ = ["generate", "write_verilog", "size_estimate", "large_design_message",
           "LargeDesignWarning", "WARN_SYNAPSES", "sidecar_path", "time_zero_events"]

# The register Yosys' Verilog backend adds to run `always @*` blocks at time 0.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")

#: Verilog-2005 keywords (IEEE 1364-2005, annex B) and the SystemVerilog ones Yosys reads in
#: plain Verilog files: not usable as a module name.
VERILOG_KEYWORDS = frozenset("""
always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos config deassign
default defparam design disable edge else end endcase endconfig endfunction endgenerate
endmodule endprimitive endspecify endtable endtask event for force forever fork function
generate genvar highz0 highz1 if ifnone incdir include initial inout input instance integer
join large liblist library localparam macromodule medium module nand negedge nmos nor
noshowcancelled not notif0 notif1 or output parameter pmos posedge primitive pull0 pull1
pulldown pullup pulsestyle_onevent pulsestyle_ondetect rcmos real realtime reg release repeat
rnmos rpmos rtran rtranif0 rtranif1 scalared showcancelled signed small specify specparam
strong0 strong1 supply0 supply1 table task time tran tranif0 tranif1 tri tri0 tri1 triand
trior trireg unsigned use uwire vectored wait wand weak0 weak1 while wire wor xnor xor
assert assume cover logic bit byte int shortint longint always_comb always_ff always_latch
enum struct typedef unique priority final property sequence restrict
""".split())

_TIME_ZERO_REG = re.compile(
    r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;$", re.M)


def time_zero_events(text):
    """``text`` with a time-0 event after each of Yosys' time-0 registers (module docstring),
    so that the combinational blocks run at time 0 in SystemVerilog mode too."""
    def add(match):
        indent, reg = match.group(1), match.group(2)
        return (f"{match.group(0)}\n`ifndef VERILATOR\n{indent}initial {reg} <= 1'h1;\n"
                f"`endif")

    return _TIME_ZERO_REG.sub(add, text)

#: Parallel synapses (sum of PE*SIMD over layers) above which generation warns first.
WARN_SYNAPSES = 1 << 17

# Generation cost per parallel synapse, for the warning (measurements: hw/README.md).
_SECONDS_PER_SYNAPSE = 0.6e-3
_MB_BASE = 150
_MB_PER_SYNAPSE = 9e-3


class LargeDesignWarning(UserWarning):
    """Generating this design will take long and use much memory."""


def size_estimate(model, folding=None):
    """Rough cost of generating ``model`` with ``folding``.

    Returns ``{"synapses": sum of PE*SIMD, "seconds": .., "megabytes": ..}``.
    """
    folding = resolve_folding(model, folding)
    synapses = sum(f.pe * f.simd for f in folding)
    return {"synapses": synapses, "seconds": synapses * _SECONDS_PER_SYNAPSE,
            "megabytes": _MB_BASE + synapses * _MB_PER_SYNAPSE}


def large_design_message(model, folding=None):
    """A warning text if the design is above :data:`WARN_SYNAPSES`, else ``None``."""
    est = size_estimate(model, folding)
    if est["synapses"] <= WARN_SYNAPSES:
        return None
    return (f"{est['synapses']} parallel synapses: generating this design may take about "
            f"{est['seconds']:.0f} s and {est['megabytes'] / 1000:.1f} GB of memory; fold it "
            f"(--fold auto --ii CYCLES) to make it smaller")


def generate(model, folding=None, pipeline=0, *, name="bnnflow_top", debug_taps=False,
             fault=None, warn_large=True, popcount_style=None, rom_register=False):
    """Verilog text and sidecar dict for ``model``.

    Parameters
    ----------
    model : BnnModel
    folding, pipeline, debug_taps, fault, popcount_style, rom_register
        As :class:`bnnflow.hw.top.BnnTop` (``popcount_style=None``: its default, without
        importing Amaranth at module load).
    name : str
        Verilog module name of the top.
    warn_large : bool
        Emit a :class:`LargeDesignWarning` before generating a design above
        :data:`WARN_SYNAPSES` parallel synapses.

    Returns
    -------
    (verilog, sidecar) : str, dict

    Raises
    ------
    ValueError
        Bad folding, pipeline, fault or name.
    """
    from amaranth.back import verilog

    from .popcount import DEFAULT_STYLE
    from .top import BnnTop

    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"name must be a Verilog identifier, not {name!r}")
    if name in VERILOG_KEYWORDS:
        raise ValueError(f"name must be a Verilog identifier, not the keyword {name!r}")
    top = BnnTop(model, folding, pipeline, debug_taps=debug_taps, fault=fault,
                 popcount_style=popcount_style or DEFAULT_STYLE, rom_register=rom_register)
    if warn_large:
        message = large_design_message(model, top.folding)
        if message:
            warnings.warn(message, LargeDesignWarning, stacklevel=2)
    text = time_zero_events(verilog.convert(top, name=name, emit_src=False))
    return text, top.sidecar(name)


def sidecar_path(out_v):
    """``OUT.json`` beside ``OUT.v``."""
    return Path(out_v).with_suffix(".json")


def write_verilog(model, out_v, folding=None, pipeline=0, **kw):
    """Generate and write ``out_v`` and its sidecar ``OUT.json``, both atomically.

    Nothing is written if generation fails. Returns the sidecar dict.
    """
    out_v = Path(out_v)
    out_json = sidecar_path(out_v)
    if out_json == out_v:
        raise ValueError(f"output must end in .v, not {str(out_v)!r}")
    text, sidecar = generate(model, folding, pipeline, **kw)
    with atomic_path(out_v) as tmp_v, atomic_path(out_json) as tmp_json:
        tmp_v.write_text(text, encoding="utf-8")
        tmp_json.write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n",
                            encoding="utf-8")
    return sidecar
