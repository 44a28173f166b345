// bnnflow: a behavioural model of the ECP5 DP16KD block RAM for gate-level simulation of Yosys
// netlists (sim/netlist.py). Yosys' own ECP5 cell models give DP16KD parameters and no
// behaviour; this one models what Yosys' memory mapping uses:
//   * the array is 1024 words of 18 bits; INITVAL_xx holds words 16*xx .. 16*xx+15, word i at
//     bits [20*i +: 18] (the layout Yosys writes);
//   * data widths 36, 18 and 9 on either port: a 36-bit access at address a = AD[13:5] covers
//     words 2a (low half, DOA / DIA) and 2a+1 (high half, DOB / DIB), the pseudo-dual-port form
//     Yosys uses for wide memories; 18 bits: word AD[13:4]; 9 bits: half AD[3] of word
//     AD[13:4];
//   * writes at CLKA / CLKB with CE and WE; an 18-bit write takes its two 9-bit byte enables on
//     AD1:AD0, a 36-bit write its four on ADA3:ADA0 (as Yosys connects them);
//   * reads at the clock edge with CE (old data when the same word is written that cycle),
//     RST clears the output, REGMODE "OUTREG" adds an output register enabled by OCE;
//   * chip selects are taken as always selected (Yosys ties CS to 0 with CSDECODE "0b000").
// Widths 1, 2 and 4 are not modelled: their outputs stay X and a message says so at time 0.
module DP16KD (
  input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5,
  input DIA4, DIA3, DIA2, DIA1, DIA0,
  input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
  input CEA, OCEA, CLKA, WEA, CSA2, CSA1, CSA0, RSTA,
  input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5,
  input DIB4, DIB3, DIB2, DIB1, DIB0,
  input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
  input CEB, OCEB, CLKB, WEB, CSB2, CSB1, CSB0, RSTB,
  output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6,
  output DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
  output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6,
  output DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
  parameter DATA_WIDTH_A = 18;
  parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG";
  parameter REGMODE_B = "NOREG";
  parameter RESETMODE = "SYNC";
  parameter ASYNC_RESET_RELEASE = "SYNC";
  parameter WRITEMODE_A = "NORMAL";
  parameter WRITEMODE_B = "NORMAL";
  parameter CSDECODE_A = "0b000";
  parameter CSDECODE_B = "0b000";
  parameter CLKAMUX = "CLKA";
  parameter CLKBMUX = "CLKB";
  parameter GSR = "ENABLED";
  parameter INIT_DATA = "STATIC";
  parameter INITVAL_00 = 320'h0; parameter INITVAL_01 = 320'h0; parameter INITVAL_02 = 320'h0;
  parameter INITVAL_03 = 320'h0; parameter INITVAL_04 = 320'h0; parameter INITVAL_05 = 320'h0;
  parameter INITVAL_06 = 320'h0; parameter INITVAL_07 = 320'h0; parameter INITVAL_08 = 320'h0;
  parameter INITVAL_09 = 320'h0; parameter INITVAL_0A = 320'h0; parameter INITVAL_0B = 320'h0;
  parameter INITVAL_0C = 320'h0; parameter INITVAL_0D = 320'h0; parameter INITVAL_0E = 320'h0;
  parameter INITVAL_0F = 320'h0; parameter INITVAL_10 = 320'h0; parameter INITVAL_11 = 320'h0;
  parameter INITVAL_12 = 320'h0; parameter INITVAL_13 = 320'h0; parameter INITVAL_14 = 320'h0;
  parameter INITVAL_15 = 320'h0; parameter INITVAL_16 = 320'h0; parameter INITVAL_17 = 320'h0;
  parameter INITVAL_18 = 320'h0; parameter INITVAL_19 = 320'h0; parameter INITVAL_1A = 320'h0;
  parameter INITVAL_1B = 320'h0; parameter INITVAL_1C = 320'h0; parameter INITVAL_1D = 320'h0;
  parameter INITVAL_1E = 320'h0; parameter INITVAL_1F = 320'h0; parameter INITVAL_20 = 320'h0;
  parameter INITVAL_21 = 320'h0; parameter INITVAL_22 = 320'h0; parameter INITVAL_23 = 320'h0;
  parameter INITVAL_24 = 320'h0; parameter INITVAL_25 = 320'h0; parameter INITVAL_26 = 320'h0;
  parameter INITVAL_27 = 320'h0; parameter INITVAL_28 = 320'h0; parameter INITVAL_29 = 320'h0;
  parameter INITVAL_2A = 320'h0; parameter INITVAL_2B = 320'h0; parameter INITVAL_2C = 320'h0;
  parameter INITVAL_2D = 320'h0; parameter INITVAL_2E = 320'h0; parameter INITVAL_2F = 320'h0;
  parameter INITVAL_30 = 320'h0; parameter INITVAL_31 = 320'h0; parameter INITVAL_32 = 320'h0;
  parameter INITVAL_33 = 320'h0; parameter INITVAL_34 = 320'h0; parameter INITVAL_35 = 320'h0;
  parameter INITVAL_36 = 320'h0; parameter INITVAL_37 = 320'h0; parameter INITVAL_38 = 320'h0;
  parameter INITVAL_39 = 320'h0; parameter INITVAL_3A = 320'h0; parameter INITVAL_3B = 320'h0;
  parameter INITVAL_3C = 320'h0; parameter INITVAL_3D = 320'h0; parameter INITVAL_3E = 320'h0;
  parameter INITVAL_3F = 320'h0;

  localparam [64*320-1:0] INIT = {
    INITVAL_3F, INITVAL_3E, INITVAL_3D, INITVAL_3C, INITVAL_3B, INITVAL_3A, INITVAL_39, INITVAL_38,
    INITVAL_37, INITVAL_36, INITVAL_35, INITVAL_34, INITVAL_33, INITVAL_32, INITVAL_31, INITVAL_30,
    INITVAL_2F, INITVAL_2E, INITVAL_2D, INITVAL_2C, INITVAL_2B, INITVAL_2A, INITVAL_29, INITVAL_28,
    INITVAL_27, INITVAL_26, INITVAL_25, INITVAL_24, INITVAL_23, INITVAL_22, INITVAL_21, INITVAL_20,
    INITVAL_1F, INITVAL_1E, INITVAL_1D, INITVAL_1C, INITVAL_1B, INITVAL_1A, INITVAL_19, INITVAL_18,
    INITVAL_17, INITVAL_16, INITVAL_15, INITVAL_14, INITVAL_13, INITVAL_12, INITVAL_11, INITVAL_10,
    INITVAL_0F, INITVAL_0E, INITVAL_0D, INITVAL_0C, INITVAL_0B, INITVAL_0A, INITVAL_09, INITVAL_08,
    INITVAL_07, INITVAL_06, INITVAL_05, INITVAL_04, INITVAL_03, INITVAL_02, INITVAL_01, INITVAL_00};

  reg [17:0] mem [0:1023];
  integer i;
  initial begin
    for (i = 0; i < 1024; i = i + 1)
      mem[i] = INIT[(i / 16) * 320 + (i % 16) * 20 +: 18];
    if (DATA_WIDTH_A < 9 || DATA_WIDTH_B < 9)
      $display("DP16KD model: data widths 1, 2 and 4 are not modelled (outputs stay X)");
  end

  wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2,
                     ADA1, ADA0};
  wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2,
                     ADB1, ADB0};
  wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7,
                     DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
  wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7,
                     DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};

  // The 36-bit word at a 36-bit address, or the 18/9-bit item at a narrower one.
  function [35:0] read_at(input integer width, input [13:0] ad);
    reg [17:0] w;
    begin
      read_at = {36{1'bx}};
      if (width == 36) read_at = {mem[{ad[13:5], 1'b1}], mem[{ad[13:5], 1'b0}]};
      else if (width == 18) read_at = {18'bx, mem[ad[13:4]]};
      else if (width == 9) begin
        w = mem[ad[13:4]];
        read_at = {27'bx, ad[3] ? w[17:9] : w[8:0]};
      end
    end
  endfunction

  // A write of port data {hi, lo} (36 bits: hi = DIB) with byte enables.
  task write_at(input integer width, input [13:0] ad, input [17:0] lo, input [17:0] hi);
    begin
      if (width == 36) begin
        if (ad[0]) mem[{ad[13:5], 1'b0}][8:0] = lo[8:0];
        if (ad[1]) mem[{ad[13:5], 1'b0}][17:9] = lo[17:9];
        if (ad[2]) mem[{ad[13:5], 1'b1}][8:0] = hi[8:0];
        if (ad[3]) mem[{ad[13:5], 1'b1}][17:9] = hi[17:9];
      end else if (width == 18) begin
        if (ad[0]) mem[ad[13:4]][8:0] = lo[8:0];
        if (ad[1]) mem[ad[13:4]][17:9] = lo[17:9];
      end else if (width == 9) begin
        if (ad[3]) mem[ad[13:4]][17:9] = lo[8:0];
        else mem[ad[13:4]][8:0] = lo[8:0];
      end
    end
  endtask

  reg [35:0] qa = 36'b0, qb = 36'b0, ra = 36'b0, rb = 36'b0;
  reg [35:0] next_a, next_b;
  wire clka = CLKAMUX == "INV" ? ~CLKA : CLKA;
  wire clkb = CLKBMUX == "INV" ? ~CLKB : CLKB;

  // Both ports read the old contents first, then write: a read of a word written in the same
  // cycle returns the old data.
  always @(posedge clka) begin
    if (CEA) next_a = read_at(DATA_WIDTH_A, ada);
    if (CEA && WEA && DATA_WIDTH_A >= 9) write_at(DATA_WIDTH_A, ada, dia, dib);
    if (RSTA) qa <= 36'b0;
    else if (CEA) qa <= next_a;
    if (RSTA) ra <= 36'b0;
    else if (OCEA) ra <= qa;
  end
  always @(posedge clkb) begin
    if (CEB) next_b = read_at(DATA_WIDTH_B, adb);
    if (CEB && WEB && DATA_WIDTH_B >= 9 && DATA_WIDTH_B < 36) write_at(DATA_WIDTH_B, adb, dib, dib);
    if (RSTB) qb <= 36'b0;
    else if (CEB) qb <= next_b;
    if (RSTB) rb <= 36'b0;
    else if (OCEB) rb <= qb;
  end

  wire [35:0] oa = REGMODE_A == "OUTREG" ? ra : qa;
  wire [35:0] ob = REGMODE_B == "OUTREG" ? rb : qb;
  // A 36-bit read port drives both halves: DOA the low 18 bits, DOB the high 18.
  wire [17:0] doa = DATA_WIDTH_B == 36 ? ob[17:0] : oa[17:0];
  wire [17:0] dob = DATA_WIDTH_B == 36 ? ob[35:18]
                  : DATA_WIDTH_A == 36 ? oa[35:18] : ob[17:0];
  assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5,
          DOA4, DOA3, DOA2, DOA1, DOA0} = doa;
  assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5,
          DOB4, DOB3, DOB2, DOB1, DOB0} = dob;
endmodule
