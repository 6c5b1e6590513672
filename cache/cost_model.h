// The cost model of one MoE layer's expert work: how long a host-to-GPU copy, an NVMe read, a
// CPU expert computation and a GPU expert computation take, from a few measured rates and fixed
// latencies. Pure arithmetic, no I/O, no clocks: the hybrid scheduler (cache/hybrid_chooser.h)
// splits misses with it, the executor fills it from start-up calibration
// (runtime/engine/offload_calibration.h) and keeps it current from telemetry, and the tuning
// tools (trace/tune) predict tokens per second with it.
//
// Model of a layer pass (decode: one token; prefill: many). Two channels run at once:
//   copy channel: the PCIe copies of the pass's streamed misses (after their NVMe reads, if any),
//                 then the GPU kernel over every GPU expert (hits, waits, streamed misses);
//   CPU channel:  the hidden state down, the CPU experts (NVMe reads first for those not in RAM),
//                 the partial result up; `cpu_fixed` covers the transfers and thread wake-up.
// The pass takes max(copy channel, CPU channel) + `layer_fixed` (routing download, planning,
// launches). Copies already in flight when the pass starts (prefetches it waits for) occupy the
// copy channel first.
//
// Per-expert compute times are tabulated against the number of tokens the expert sees (the
// calibration measures them at decode-like and prefill-like counts) and interpolated linearly
// between points; beyond the last point they grow in proportion to the tokens. A CPU expert read
// from DRAM costs at least bytes / cpu_rate (one pass over its weights whatever the tokens).
//
// Interface stability: CostParams, CostModel and its methods below are used by other branches
// (the tuner); add fields with defaults rather than changing the meaning of existing ones.
//
// Thread-safety: a CostModel is immutable after construction; copies are cheap.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cs {

// One point of a compute-time table: an expert seeing `tokens` tokens takes `seconds`.
struct TokenCost {
  int tokens = 1;
  double seconds = 0;
};

struct CostParams {
  uint64_t expert_bytes = 0;   // bytes of one expert blob (the unit of every transfer)
  double copy_rate = 25e9;     // host (pinned) -> GPU, bytes/s
  double copy_latency = 8e-6;  // per copy: launch and completion
  double nvme_rate = 3e9;      // packed file -> host RAM, bytes/s (0: no NVMe tier)
  double nvme_latency = 100e-6;
  double dram_rate = 60e9;  // what the CPU kernel reads of an expert's weights, bytes/s
  // CPU expert time against its tokens (ascending tokens). Empty: expert_bytes / dram_rate at
  // one token, growing in proportion to the tokens.
  std::vector<TokenCost> cpu;
  // GPU expert kernel time against its tokens (ascending). Empty: expert_bytes / gpu_rate.
  std::vector<TokenCost> gpu;
  double gpu_rate = 700e9;     // bytes/s of expert weights the GPU kernel reads (decode)
  double cpu_fixed = 60e-6;    // per pass with CPU experts: hidden state down, result up, wake-up
  double layer_fixed = 50e-6;  // per layer: routing download, planning, launches

  std::string describe() const;  // one line: rates and latencies
};

// How a pass's experts are placed, as counts and token numbers.
struct PassLoad {
  int gpu_resident = 0;               // hits and arrived prefetches: computed on the GPU, no copy
  int in_flight = 0;                  // prefetches the pass waits for (their copies are under way)
  std::vector<int> stream_tokens;     // per streamed miss: tokens routed to it
  std::vector<int> cpu_tokens;        // per CPU miss: tokens routed to it
  int nvme_stream = 0, nvme_cpu = 0;  // of the misses above, those read from NVMe first
  int gpu_tokens_resident = 1;        // tokens per resident expert (for its kernel time)
};

struct PassTime {
  double copy_channel = 0;  // copies + GPU kernel
  double cpu_channel = 0;   // CPU experts + cpu_fixed (0 when no CPU experts)
  double total = 0;         // max of both + layer_fixed
};

class CostModel {
 public:
  CostModel() = default;
  explicit CostModel(CostParams p);

  const CostParams& params() const { return p_; }

  double copy_seconds() const;           // one expert blob host -> GPU
  double nvme_seconds() const;           // one expert blob NVMe -> host (0 when nvme_rate is 0)
  double cpu_seconds(int tokens) const;  // one expert on the CPU, from DRAM
  double gpu_seconds(int tokens) const;  // one resident expert on the GPU

  PassTime pass_seconds(const PassLoad& load) const;

  // Decode estimate for tuners: seconds per token of the MoE layers when each of `layers`
  // layers has `hits` resident experts, `stream` copied and `cpu` computed on the CPU (one
  // token each), plus `other_seconds` of non-expert work per token.
  double decode_token_seconds(int layers, double hits, double stream, double cpu,
                              double other_seconds = 0) const;

 private:
  static double interpolate(const std::vector<TokenCost>& table, int tokens, double fallback1);

  CostParams p_;
};

// Reads a table back as "tokens:seconds,..." (for logs and tests).
std::string format_token_costs(const std::vector<TokenCost>& table);

}  // namespace cs
