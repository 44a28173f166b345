// bnnflow direct Verilator harness: drives the Verilated top (class Vtop) from C++ with the
// stall decisions that bnnflow.sim.direct precomputed from StreamBench's seeded generators.
//
// Usage: bnnflow_direct JOB.bin RESULTS.bin [TRACE.vcd]
//
// It mirrors bnnflow.sim.stimulus.StreamBench cycle for cycle: the timing phase (inputs back to
// back, o.ready high), then the main phase (a precomputed gap before each offer of an input, a
// precomputed o.ready per cycle); a phase ends when every output has arrived and every input
// has been sent, or after max_idle edges with no transfer. With reset_after > 0 it also runs the bench's mid-stream reset, whose
// timing depends on the design and so is decided here, by the same rules and state numbers
// (StreamBench._RESET_*): ARMED until reset_after main-phase inputs have transferred; HOLD
// (o.ready driven low, its draw still consumed) until an edge shows o.valid high and either an
// input offered but not taken or none left; FIRE: one cycle with rst high, i.valid and o.ready
// low, at whose edge nothing is recorded; then DONE: the stream restarts at the first image
// whose output is missing (a new offer: next gap), the taps keep that many entries, and an
// output transfer sooner than min_latency edges after its image's new input transfer is stale.
//
// Vtop is not the design itself but the wrapper bnnflow.sim.direct writes around it: every
// design input except clk goes through a register (port next_<name>, loaded on each rising
// edge), the outputs pass through. So no logic of the design depends on a top-level input, and
// Verilator evaluates its combinational logic once per cycle (after the rising edge) instead of
// again in the input region of every eval(); the ports a cycle shows are final right after the
// previous edge. Per cycle: sample the outputs (the values the rising edge sees), update the
// bench state, drive the next cycle's inputs into next_*, evaluate the rising edge, then the
// falling edge (which only re-evaluates the wrapper's input logic). The design sees the same
// input values in the same cycles as on the other simulators.
//
// The design-specific part (the debug taps) comes from bnnflow_ports.h, written per build:
//   #define BNN_TAPS <number of taps>
//   #define BNN_TAP_WORDS <32-bit words of the widest tap>
//   static void read_tap(Vtop* top, int j, uint32_t& valid, uint32_t* words);
//   static const uint32_t BNN_TAP_COUNTS[]: tap transfers per image (the reset keeps
//   restart * BNN_TAP_COUNTS[j] entries of tap j).
//
// Verilator escapes "__" in port names as "___05F": top->next_i___05Fvalid is the wrapper's
// port next_i__valid.
//
// Job file (little-endian uint32 unless stated): magic 0x424e4e44 ("BNND"), version 3,
// in_words, out_words, n_timing, n_main (input transfers), max_idle, stalling (0/1), n_ready
// (uint64 as two words, low first), n_gaps, reset_after (0: no reset; in images), min_latency,
// per_image (input transfers per image: H * W pixels for a conv network, else 1), needed (the
// transfers of an image its output depends on; the stale check counts from the last of them,
// as StreamBench does); timing inputs
// (n_timing * in_words); main inputs (n_main * in_words); gaps (n_gaps words: gap cycles before
// main-phase offer k of an input transfer); o.ready (n_ready bytes, 0/1). An image counts as
// transferred (in_edges, reset_after) at its last transfer, as in StreamBench.
//
// Results file: magic, version, cycles (uint64), exhausted, stuck[2], out_words, taps,
// tap_words; per phase: n_in, in_edges (uint64 each), n_out, out_edges (uint64 each), payloads
// (n_out * out_words); per tap: n, data (n * tap_words); reset edge (uint64, all ones when no
// reset was applied), restart, in_flight, input_waiting; n_stale, stale edges (uint64 each),
// stale payloads (n_stale * out_words); loop nanoseconds (uint64).
// Exit status: 0 ok, 2 bad job file or I/O error, 3 the o.ready pattern ran out (the caller
// retries with a longer one).

#include "Vtop.h"
#include "verilated.h"
#if VM_TRACE
#include "verilated_vcd_c.h"
#endif

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

namespace {

constexpr uint32_t MAGIC = 0x424e4e44u;
constexpr uint32_t VERSION = 3;
// StreamBench's reset states.
enum ResetState { RESET_OFF, RESET_ARMED, RESET_HOLD, RESET_FIRE, RESET_DONE };

// Port access for every width Verilator uses (CData..QData, VlWide<N>).
template <typename T>
void set_port(T& port, const uint32_t* words, int n) {
    uint64_t v = words[0];
    if (n > 1 && sizeof(T) > 4) v |= static_cast<uint64_t>(words[1]) << 32;
    port = static_cast<T>(v);
}
template <std::size_t N>
void set_port(VlWide<N>& port, const uint32_t* words, int n) {
    for (std::size_t i = 0; i < N; ++i) port[i] = i < static_cast<std::size_t>(n) ? words[i] : 0;
}
template <typename T>
void get_port(const T& port, uint32_t* words, int n) {
    const uint64_t v = static_cast<uint64_t>(port);
    words[0] = static_cast<uint32_t>(v);
    for (int i = 1; i < n; ++i) words[i] = i == 1 ? static_cast<uint32_t>(v >> 32) : 0;
}
template <std::size_t N>
void get_port(const VlWide<N>& port, uint32_t* words, int n) {
    for (int i = 0; i < n; ++i) words[i] = static_cast<std::size_t>(i) < N ? port[i] : 0;
}

struct Reader {
    FILE* f;
    bool ok = true;
    uint32_t u32() {
        uint32_t v = 0;
        ok = ok && std::fread(&v, 4, 1, f) == 1;
        return v;
    }
    void words(std::vector<uint32_t>& out, std::size_t n) {
        out.resize(n);
        ok = ok && (n == 0 || std::fread(out.data(), 4, n, f) == n);
    }
};

struct Writer {
    FILE* f;
    bool ok = true;
    void u32(uint32_t v) { ok = ok && std::fwrite(&v, 4, 1, f) == 1; }
    void u64(uint64_t v) { ok = ok && std::fwrite(&v, 8, 1, f) == 1; }
    void u64s(const std::vector<uint64_t>& v) {
        u32(static_cast<uint32_t>(v.size()));
        ok = ok && (v.empty() || std::fwrite(v.data(), 8, v.size(), f) == v.size());
    }
    void words(const std::vector<uint32_t>& v) {
        ok = ok && (v.empty() || std::fwrite(v.data(), 4, v.size(), f) == v.size());
    }
};

}  // namespace

#include "bnnflow_ports.h"  // uses get_port

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s JOB.bin RESULTS.bin [TRACE.vcd]\n", argv[0]);
        return 2;
    }
    FILE* jf = std::fopen(argv[1], "rb");
    if (!jf) {
        std::perror(argv[1]);
        return 2;
    }
    Reader r{jf};
    const uint32_t magic = r.u32(), version = r.u32();
    const int in_words = static_cast<int>(r.u32()), out_words = static_cast<int>(r.u32());
    const uint32_t n_timing = r.u32(), n_main = r.u32(), max_idle = r.u32();
    const bool stalling = r.u32() != 0;
    const uint64_t n_ready_lo = r.u32(), n_ready_hi = r.u32();
    const uint64_t n_ready = n_ready_lo | (n_ready_hi << 32);
    const uint32_t n_gaps = r.u32(), reset_after = r.u32(), min_latency = r.u32();
    const uint32_t per_image = r.u32(), needed = r.u32();
    std::vector<uint32_t> inputs[2], gaps;
    r.words(inputs[0], static_cast<std::size_t>(n_timing) * in_words);
    r.words(inputs[1], static_cast<std::size_t>(n_main) * in_words);
    r.words(gaps, n_gaps);
    std::vector<uint8_t> ready_bits(n_ready);
    r.ok = r.ok && (n_ready == 0 || std::fread(ready_bits.data(), 1, n_ready, jf) == n_ready);
    std::fclose(jf);
    if (!r.ok || magic != MAGIC || version != VERSION || in_words < 1 || out_words < 1
        || n_gaps < n_main || per_image < 1 || n_timing % per_image || n_main % per_image
        || needed < 1 || needed > per_image) {
        std::fprintf(stderr, "%s: not a bnnflow direct job file (version %u)\n", argv[1],
                     VERSION);
        return 2;
    }

    auto context = std::make_unique<VerilatedContext>();
    context->commandArgs(1, argv);
#if VM_TRACE
    std::unique_ptr<VerilatedVcdC> trace;
    if (argc > 3) context->traceEverOn(true);
#endif
    auto top = std::make_unique<Vtop>(context.get());
#if VM_TRACE
    if (argc > 3) {
        trace = std::make_unique<VerilatedVcdC>();
        top->trace(trace.get(), 99);
        trace->open(argv[3]);
    }
#endif
    uint64_t time = 0;  // half periods of a 10 ns clock, dumped in ns
    auto dump = [&]() {
#if VM_TRACE
        if (trace) trace->dump(time * 5);
#endif
        ++time;
    };

    // The design's inputs are the wrapper's input registers, loaded from the next_* ports on
    // each rising edge: the value set before edge c-1 is what the design sees in cycle c.
    // Reset: the wrapper's staged rst starts high, so the design is reset on three rising edges
    // (R1..R3, as the cocotb bench); the cycle-0 inputs go in with rst low before R3.
    top->clk = 0;
    top->next_rst = 1;
    top->next_i___05Fvalid = 0;
    top->next_o___05Fready = 0;
    const std::vector<uint32_t> zero_in(in_words, 0);
    set_port(top->next_i___05Fpayload, zero_in.data(), in_words);
    top->eval();
    dump();

    const uint32_t transfers[2] = {n_timing, n_main};
    const uint32_t counts[2] = {n_timing / per_image, n_main / per_image};  // images
    std::vector<uint64_t> in_edges[2], out_edges[2];
    std::vector<uint32_t> payloads[2];
    bool stuck[2] = {false, false};
    std::vector<std::vector<uint32_t>> tap_data(BNN_TAPS);
    std::vector<uint32_t> out_buf(out_words), tap_buf(BNN_TAP_WORDS > 0 ? BNN_TAP_WORDS : 1);
    for (int p = 0; p < 2; ++p) {  // no reallocation in the clock loop
        in_edges[p].reserve(counts[p]);
        out_edges[p].reserve(counts[p]);
        payloads[p].reserve(static_cast<std::size_t>(counts[p]) * out_words);
    }
    for (auto& data : tap_data) data.reserve(static_cast<std::size_t>(n_main) * BNN_TAP_WORDS);
    uint64_t cycles = 0, ready_used = 0;
    bool exhausted = false;

    int phase = 0;
    while (phase < 2 && counts[phase] == 0) ++phase;
    uint32_t next_in = 0, idle = 0, received = 0;
    // offers: main-phase offers of an image so far (transfers and resets), the index of the
    // current gap; it equals next_in unless a reset sent images again.
    uint32_t offers = 0;
    uint32_t gap = phase == 1 && stalling ? gaps[0] : 0;
    auto gap_of = [&](uint32_t offer) {  // bounds-checked: the job sizes n_gaps for the worst case
        if (offer >= n_gaps) {
            std::fprintf(stderr, "offer %u beyond the %u gaps of the job file\n", offer, n_gaps);
            std::exit(2);
        }
        return gaps[offer];
    };
    // The mid-stream reset (see the top of this file).
    int reset_state = reset_after > 0 ? RESET_ARMED : RESET_OFF;
    uint64_t reset_edge = ~static_cast<uint64_t>(0);
    uint32_t restart = 0, in_flight = 0, input_waiting = 0;
    std::vector<uint64_t> need_edges;  // main phase: each image's last needed transfer
    need_edges.reserve(2 * static_cast<std::size_t>(counts[1]) + 1);
    std::size_t resent_from = 0;  // index in need_edges of the first image sent after the reset
    std::vector<uint64_t> stale_edges;
    std::vector<uint32_t> stale_payloads;
    // drive(): the inputs of the next cycle from the bench state after the current edge;
    // false when the o.ready pattern has run out.
    uint32_t valid = 0, ready = 0;
    auto drive = [&]() {
        const bool stall_now = phase == 1 && stalling;
        valid = next_in < transfers[phase] && gap == 0;
        ready = 1;
        if (stall_now) {
            if (ready_used >= n_ready) return false;
            ready = ready_bits[ready_used++];  // drawn in hold and reset cycles too
        }
        uint32_t rst = 0;
        if (reset_state == RESET_FIRE) {
            valid = 0;
            ready = 0;
            rst = 1;
        } else if (reset_state == RESET_HOLD) {
            ready = 0;
        }
        top->next_rst = rst;
        top->next_i___05Fvalid = valid;
        set_port(top->next_i___05Fpayload,
                 valid ? &inputs[phase][static_cast<std::size_t>(next_in) * in_words]
                       : zero_in.data(),
                 in_words);
        top->next_o___05Fready = ready;
        return true;
    };
    auto rising_edge = [&]() {
        top->clk = 1;
        top->eval();
        dump();
        top->clk = 0;
        top->eval();  // cheap: only the wrapper's registers read the inputs
        dump();
    };
    for (int i = 0; i < 3; ++i) {
        if (i == 2) {
            top->next_rst = 0;
            if (phase < 2 && !drive()) exhausted = true;
        }
        rising_edge();
    }

    const auto started = std::chrono::steady_clock::now();
    while (phase < 2 && !exhausted) {
        const bool main_phase = phase == 1;
        const bool stall_now = main_phase && stalling;
        // edge(): the ports as the rising edge sees them (the inputs are registers now).
        const uint64_t edge = cycles++;
        if (reset_state == RESET_FIRE) {
            // rst was high at this edge: nothing the design showed counts. Restart at the first
            // image whose output is missing.
            reset_edge = edge;
            restart = received;
            in_flight = static_cast<uint32_t>(in_edges[1].size()) - received;
            for (int j = 0; j < BNN_TAPS; ++j)
                tap_data[j].resize(std::min<std::size_t>(
                    tap_data[j].size(),
                    static_cast<std::size_t>(restart) * BNN_TAP_COUNTS[j] * BNN_TAP_WORDS));
            resent_from = need_edges.size();
            next_in = restart * per_image;
            ++offers;
            gap = stall_now ? gap_of(offers) : 0;
            idle = 0;
            reset_state = RESET_DONE;
            if (!drive()) exhausted = true;
            rising_edge();
            continue;
        }
        bool moved = false;
        const bool i_ready = top->i___05Fready;
        if (valid && i_ready) {
            ++next_in;
            if (next_in % per_image == 0) in_edges[phase].push_back(edge);  // image's last
            if (main_phase && next_in % per_image == needed % per_image)
                need_edges.push_back(edge);
            if (main_phase) ++offers;
            gap = stall_now && next_in < transfers[phase] ? gap_of(offers) : 0;
            moved = true;
        } else if (gap) {
            --gap;
        }
        if (top->o___05Fvalid && ready) {
            get_port(top->o___05Fpayload, out_buf.data(), out_words);
            bool stale = false;
            if (reset_state == RESET_DONE) {
                const std::size_t j = resent_from + (received - restart);
                stale = j >= need_edges.size() || edge < need_edges[j] + min_latency;
            }
            if (stale) {  // not progress: see StreamBench.edge
                stale_edges.push_back(edge);
                stale_payloads.insert(stale_payloads.end(), out_buf.begin(), out_buf.end());
            } else {
                payloads[phase].insert(payloads[phase].end(), out_buf.begin(), out_buf.end());
                out_edges[phase].push_back(edge);
                ++received;
                moved = true;
            }
        }
#if BNN_TAPS > 0
        if (main_phase) {
            for (int j = 0; j < BNN_TAPS; ++j) {
                uint32_t tap_valid = 0;
                read_tap(top.get(), j, tap_valid, tap_buf.data());
                if (tap_valid)
                    tap_data[j].insert(tap_data[j].end(), tap_buf.begin(), tap_buf.end());
            }
        }
#endif
        if (main_phase) {
            if (reset_state == RESET_HOLD) {
                const bool waiting = valid && !i_ready;
                if (top->o___05Fvalid && (waiting || next_in >= transfers[1])) {
                    reset_state = RESET_FIRE;
                    input_waiting = waiting;
                }
            } else if (reset_state == RESET_ARMED && in_edges[1].size() >= reset_after) {
                reset_state = RESET_HOLD;
            }
        }
        idle = moved ? 0 : idle + 1;
        bool next_phase = false;
        // Every input sent too: an output may leave before its image's last pixels (a
        // max-pool that drops the map's last rows), which the design still expects.
        if (received >= counts[phase] && next_in >= transfers[phase]) {
            next_phase = true;
        } else if (idle >= max_idle) {
            stuck[phase] = true;
            next_phase = true;
        }
        if (next_phase) {
            ++phase;
            while (phase < 2 && counts[phase] == 0) ++phase;
            next_in = 0;
            idle = 0;
            received = 0;
            offers = 0;
            gap = phase == 1 && stalling ? gaps[0] : 0;
        }
        if (phase < 2 && !drive()) exhausted = true;
        rising_edge();
    }
    const auto loop_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now() - started).count();
    top->final();
#if VM_TRACE
    if (trace) trace->close();
#endif

    FILE* rf = std::fopen(argv[2], "wb");
    if (!rf) {
        std::perror(argv[2]);
        return 2;
    }
    Writer w{rf};
    w.u32(MAGIC);
    w.u32(VERSION);
    w.u64(cycles);
    w.u32(exhausted);
    w.u32(stuck[0]);
    w.u32(stuck[1]);
    w.u32(static_cast<uint32_t>(out_words));
    w.u32(BNN_TAPS);
    w.u32(BNN_TAP_WORDS);
    for (int p = 0; p < 2; ++p) {
        w.u64s(in_edges[p]);
        w.u64s(out_edges[p]);
        w.words(payloads[p]);
    }
    for (int j = 0; j < BNN_TAPS; ++j) {
        w.u32(static_cast<uint32_t>(tap_data[j].size() / (BNN_TAP_WORDS ? BNN_TAP_WORDS : 1)));
        w.words(tap_data[j]);
    }
    w.u64(reset_edge);
    w.u32(restart);
    w.u32(in_flight);
    w.u32(input_waiting);
    w.u32(static_cast<uint32_t>(stale_edges.size()));
    for (const uint64_t e : stale_edges) w.u64(e);
    w.words(stale_payloads);
    w.u64(static_cast<uint64_t>(loop_ns));
    const bool closed = std::fclose(rf) == 0;
    if (!w.ok || !closed) {
        std::fprintf(stderr, "%s: write failed\n", argv[2]);
        return 2;
    }
    return exhausted ? 3 : 0;
}
