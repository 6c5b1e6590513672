// The plan of one MoE layer: plain data that the planner (cache/planner.h) produces and the
// executor (runtime/engine/offload_moe_executor.h) carries out. Tests inspect plans directly.
//
// A layer runs in one or more passes over consecutive token ranges; more than one only when the
// experts its tokens need do not fit the layer's slots at once (prefill with a small budget).
// Each pass lists
//   hits    experts resident in a GPU slot,
//   waits   experts whose copy (a prefetch) is in flight: the compute waits for it,
//   demand  experts copied now (host RAM -> GPU slot, after NVMe -> host RAM when not in RAM),
//   cpu     experts computed on the CPU from their host copy instead (the second miss path).
// After the passes, prefetches copy experts predicted for the following layers.
//
// Contract with the executor: a demand copy (and its NVMe read) is complete before its pass
// computes, so the cache records demand copies as resident at once, and so are the prefetches a
// pass waits for (later passes of the layer can then evict them); other prefetches stay
// "loading" in the cache until the executor reports them arrived (or failed).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/expert_id.h"

namespace cs {

// What to do with an expert that is not in a GPU slot.
enum class MissPath : uint8_t {
  kStream,  // copy it to a GPU slot, compute it on the GPU
  kCpu,     // compute it on the CPU from its host copy
};
const char* miss_path_name(MissPath p);  // "stream", "cpu"
std::optional<MissPath> parse_miss_path(std::string_view name);

// How misses are decided (config offload.mode): every miss copied, every miss on the CPU, or
// per miss by the cost model (cache/hybrid_chooser.h) so that both channels are busy.
enum class OffloadMode : uint8_t { kHybrid, kCpu, kStream };
const char* offload_mode_name(OffloadMode m);  // "hybrid", "cpu", "stream"
std::optional<OffloadMode> parse_offload_mode(std::string_view name);

// The host-RAM side of a transfer when host RAM is a cache over NVMe: the host slot the bytes
// are in (later passes of the same plan may reuse it, so executors take it from here, not from
// the cache), and whether an NVMe read must fill it first.
struct HostFetch {
  int host_slot = -1;  // -1: every expert is in host RAM at a fixed place (no host cache)
  bool read = false;   // read from NVMe into host_slot first
  ExpertId evicted;    // expert that left host_slot for this read, kNoExpert if none
  bool needed() const { return read; }
};

struct PlanHit {
  ExpertId id;
  int slot = -1;
  bool prefetched = false;  // resident thanks to a prefetch, first use
};

struct PlanCopy {
  ExpertId id;
  int slot = -1;     // GPU slot; -1 for a prefetch into host RAM only
  ExpertId evicted;  // expert that left the GPU slot, kNoExpert if the slot was free
  HostFetch host;
  int tokens = 0;  // tokens of the pass that use it (0 for prefetches)
};

struct PlanCpu {
  ExpertId id;
  HostFetch host;
  int tokens = 0;
};

struct PlanPass {
  int t_begin = 0, t_end = 0;  // token range [t_begin, t_end)
  std::vector<PlanHit> hits;
  std::vector<PlanHit> waits;
  std::vector<PlanCopy> demand;
  std::vector<PlanCpu> cpu;
};

struct RoutedExpert {
  ExpertId id;
  int tokens = 0;        // tokens of the step routed to it
  float max_weight = 0;  // largest router weight it got
};

struct LayerPlan {
  int layer = -1;
  uint64_t tick = 0;
  // Copies in flight (prefetches) hold slots this layer needs: the executor waits for all of
  // them, reports them, and asks for the plan again. No other field is set.
  bool drain = false;
  std::vector<RoutedExpert> routed;  // distinct experts, in order of first appearance
  std::vector<PlanPass> passes;
  std::vector<PlanCopy> prefetches;

  // Every expert that left a GPU slot (demand copies first, then prefetches).
  std::vector<ExpertId> gpu_evictions() const;
  std::vector<ExpertId> host_evictions() const;
  // A one-line-per-entry description, for tests and debugging.
  std::string describe() const;
};

}  // namespace cs
