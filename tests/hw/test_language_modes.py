"""The generated Verilog simulates the same in Verilog-2005 and SystemVerilog mode (Icarus
``-g2005`` and ``-g2012``, cocotb's default): the first image right after reset, and every one
after it, matches the golden model with no X on the output (issue 20; hw/verilog.py
``time_zero_events``)."""

import shutil
import subprocess

import numpy as np
import pytest

from bnnflow.hw.verilog import generate, time_zero_events
from bnnflow.model import golden
from bnnflow.model.conventions import pack_int
from bnnflow.model.random_net import random_conv_model, random_model

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")

#: A self-checking-free bench: offers the transfers from a hex file, the first one in the cycle
#: after reset, holds each until taken, keeps o.ready high and prints every output (X as x).
TESTBENCH = """`timescale 1ns/1ns
module tb;
  reg clk = 0, rst = 1, valid = 0;
  reg [{iw}:0] mem [0:{n}];
  reg [{iw}:0] payload = 0;
  wire iready, ovalid;
  wire [{ow}:0] opayload;
  integer k = 0, outs = 0, cycle = 0;
  reg xfer;
  bnnflow_top dut(.clk(clk), .rst(rst), .i__payload(payload), .i__valid(valid),
                  .i__ready(iready), .o__valid(ovalid), .o__ready(1'b1), .o__payload(opayload));
  always #5 clk = ~clk;
  initial begin
    $readmemh("inputs.hex", mem);
    @(posedge clk); #1 rst = 0; valid = 1; payload = mem[0];
    while (outs < {images} && cycle < {limit}) begin
      // Handshakes read at the falling edge, inputs changed 1 ns after the rising one: no
      // race with the design's always blocks at the rising edge.
      @(negedge clk);
      if (ovalid) begin $display("%h", opayload); outs = outs + 1; end
      xfer = valid && iready;
      @(posedge clk); #1;
      if (xfer) begin
        k = k + 1;
        if (k > {n}) valid = 0; else payload = mem[k];
      end
      cycle = cycle + 1;
    end
    $finish;
  end
endmodule
"""

DESIGNS = [
    # The case seen giving X in -g2012: a threshold select on a fold counter still at 0.
    (lambda: random_model([100, 33, 7], seed=0), "4x33,7x5", 0),
    (lambda: random_model([37, 13, 11, 5], seed=3), "5x8,4x13,5x11", 1),
    (lambda: random_model([20, 9, 4], seed=1), None, 2),
    (lambda: random_conv_model((7, 6, 2), [("conv", 5, 3), ("pool", 2), ("dense", 6)], 3,
                               seed=1), "5x6,1x1,2x10,3x6", 1),
    # Windows a row a cycle (72-bit windows, 3 cycles each): banks and their rotation.
    (lambda: random_conv_model((7, 6, 8), [("conv", 5, 3), ("pool", 2), ("dense", 6)], 3,
                               seed=1), "5x24,1x1,2x10,3x6", 1),
]


def _transfers(model, sidecar, bits):
    layout = sidecar["input_layout"]
    if layout["kind"] == "pixels":
        c = layout["width"]
        return [pack_int(img[p * c:(p + 1) * c]) for img in bits
                for p in range(layout["transfers"])]
    return [pack_int(img) for img in bits]


@pytest.mark.parametrize("design", range(len(DESIGNS)))
@pytest.mark.parametrize("mode", ["-g2005", "-g2012"])
def test_first_and_later_images_match_golden_in_both_language_modes(design, mode, tmp_path):
    make, fold, pipeline = DESIGNS[design]
    model = make()
    text, sidecar = generate(model, fold, pipeline)
    bits = np.random.default_rng(design).integers(0, 2, size=(3, model.input.width),
                                                  dtype=np.uint8)
    transfers = _transfers(model, sidecar, bits)
    iw = sidecar["ports"]["i__payload"]["width"]
    ow = sidecar["ports"]["o__payload"]["width"]
    (tmp_path / "top.v").write_text(text)
    (tmp_path / "inputs.hex").write_text("".join(f"{v:x}\n" for v in transfers))
    (tmp_path / "tb.v").write_text(TESTBENCH.format(
        iw=iw - 1, ow=ow - 1, n=len(transfers) - 1, images=len(bits),
        limit=20 * len(bits) * (sidecar["ii"] + sidecar["latency"]) + 100))
    subprocess.run(["iverilog", mode, "-o", "sim", "tb.v", "top.v"], cwd=tmp_path, check=True)
    out = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, check=True, capture_output=True,
                         text=True).stdout.split()
    assert not any("x" in line or "z" in line for line in out), out
    g = golden.run(model, bits)
    cw = sidecar["output_layout"]["class"]["width"]
    pw = sidecar["output_layout"]["popcounts"]["width"]
    want = [int(g.classes[k]) | sum(int(p) << (cw + c * pw) for c, p in enumerate(g.popcounts[k]))
            for k in range(len(bits))]
    assert [int(line, 16) for line in out] == want


def test_time_zero_events_follow_each_yosys_time_zero_register():
    text = ("module m;\n  reg \\$auto$verilog_backend.cc:2355:dump_module$1  = 0;\n"
            "  reg other = 0;\nendmodule\n")
    assert time_zero_events(text) == (
        "module m;\n  reg \\$auto$verilog_backend.cc:2355:dump_module$1  = 0;\n"
        "`ifndef VERILATOR\n"
        "  initial \\$auto$verilog_backend.cc:2355:dump_module$1  <= 1'h1;\n"
        "`endif\n"
        "  reg other = 0;\nendmodule\n")
