// The offload configuration: one validated struct, read from a TOML file, overridden by command
// line flags, printable as the effective configuration. docs/CONFIG.md documents every key;
// configs/ holds commented examples.
//
// Unknown keys, wrong types and out-of-range values are errors naming the file, line and column
// (or the flag) and what was expected.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/hot_set.h"
#include "cache/plan.h"
#include "cache/policy.h"
#include "cache/predictor.h"
#include "cache/slot_cache.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/types.h"

namespace cs {

struct DeviceConfig {
  std::string backend = "auto";   // "auto" (CUDA when built and present), "cuda", "cpu"
  int gpu = 0;                    // CUDA device index
  uint64_t vram_budget = 0;       // bytes the runtime may use on the GPU; 0: all free memory
  uint64_t reserve = 0;           // part of the budget kept for the driver and libraries;
                                  // 0: 768 MiB with CUDA, nothing on the CPU backend
  int context = 0;                // KV cache length in tokens; 0: the model's, at most 4096
  int max_batch = 256;            // tokens per prefill chunk
  std::string kv_dtype = "auto";  // KV cache: "auto" (f16 on CUDA, f32 on the CPU), "f32",
                                  // "f16", "bf16"
  double copy_rate = 0;           // host-only copy engine: bytes/s cap; 0: unlimited
};

struct MemoryConfig {
  uint64_t host_budget = 0;           // bytes of host RAM for expert blobs; 0: every expert
  bool pin = true;                    // page-lock the host arena (cudaHostRegister)
  uint64_t pin_chunk = 256ull << 20;  // bytes pinned per call
  int numa_node = -1;                 // -1: the GPU's node ("auto"), -2: no binding ("off")
};

struct CacheConfig {
  PolicyKind policy = PolicyKind::kRouterFreq;
  SlotAllocation allocation = SlotAllocation::kGlobal;
  double decay = 0.9;                         // router_freq: weight of a one-step-old probability
  std::string hot_set;                        // path of a hot-set profile; empty: none
  PolicyKind host_policy = PolicyKind::kLru;  // the host-RAM cache over NVMe
  double prefetch_share = 0.5;  // prefetches pause while this share of slots is loading
  int prefetch_copies = 0;      // at most this many prefetch copies to the GPU in flight; 0: no cap
};

struct OffloadModeConfig {
  OffloadMode mode = OffloadMode::kHybrid;  // how misses are decided (cache/plan.h)
  bool calibrate = true;  // measure the channels at start-up (false: the defaults below)
  double adapt = 0.2;     // EWMA weight of each measured pass in the cost model's channel scales
  // Adapt the copy channel's scale from its time on the device (copies and the kernel over the
  // copied experts) instead of the host's wait for the copies alone.
  bool device_timing = false;
};

struct PredictorConfig {
  PredictorKind kind = PredictorKind::kLookahead;
  int horizon = 1;
  double threshold = 0.05;
  int top_k = 0;  // 0: the model's experts per token
};

struct IoConfig {
  int queue_depth = 32;
  bool direct_io = true;
  uint64_t read_size = 512u << 10;
  int retries = 3;
  bool register_buffers = true;
};

struct CpuConfig {
  int threads = 0;    // 0: one per physical core near the GPU
  std::string cores;  // e.g. "0-7,16-23"; empty: chosen automatically
  int spin_us = 200;  // how long an idle expert thread spins for the next layer before it sleeps
  int prefetch = kCpuPrefetchBytes;  // CPU expert kernels' software prefetch distance (0: off)
};

struct OffloadConfig {
  OffloadModeConfig offload;
  DeviceConfig device;
  MemoryConfig memory;
  CacheConfig cache;
  PredictorConfig predictor;
  IoConfig io;
  CpuConfig cpu;
};

// Parses TOML text; `origin` (a path) prefixes error messages. Keys absent from the text keep
// the values already in `config`.
void parse_offload_config(std::string_view text, const std::string& origin, OffloadConfig& config);
void load_offload_config(const std::string& path, OffloadConfig& config);
// The hot-set profile at `path` (the value of cache.hot_set), parsed for n_layers x n_experts.
// Throws cs::Error naming the file when it cannot be read or is malformed.
std::vector<HotSetEntry> load_hot_set_file(const std::string& path, int n_layers, int n_experts);

// Sets one key ("cache.policy") from command-line text; `flag` names the flag in errors.
void set_offload_key(OffloadConfig& config, const std::string& key, const std::string& value,
                     const std::string& flag);

// The effective configuration as TOML (every key, with its value).
std::string format_offload_config(const OffloadConfig& config);

// Every key, "section.name", in documentation order.
std::vector<std::string> offload_config_keys();

// device.reserve, or its default: 768 MiB on a GPU (driver and libraries), nothing on the CPU
// backend.
inline uint64_t device_reserve(const DeviceConfig& d, bool gpu) {
  return d.reserve ? d.reserve : gpu ? 768ull << 20 : 0;
}

// The CPU ids of a cpu.cores list such as "0-7,16-23" (items separated by commas, spaces allowed
// around them; each a CPU id or an ascending range), in order. Throws cs::Error
// (kInvalidArgument) naming `what` and the bad item for anything else: an empty item, a
// descending range, an id listed twice, an id of 4096 or more.
std::vector<int> parse_core_list(std::string_view text, std::string_view what);

// The CPU backend options of a [cpu] table: threads, cores (parsed, cs::Error naming "cpu.cores"),
// spinning and prefetch. The CPU experts run with them, and bench-offload's DRAM probe on the pool
// they imply (pool_options), so both read memory from the same threads.
CpuBackendOptions cpu_options(const CpuConfig& c);

// The KV cache element type a device.kv_dtype value names ("f32", "f16", "bf16"); nullopt for
// "auto" and for anything else.
std::optional<DType> kv_dtype_named(std::string_view name);

}  // namespace cs
