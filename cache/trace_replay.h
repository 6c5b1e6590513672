// Replays a routing trace (cache/routing_trace.h) through the runtime's own SlotCache, policy,
// predictor, Planner and PredictionScorer, in the order the offload executor calls them
// (runtime/engine/offload_moe_executor.cpp), and counts what the executor would have done: hits,
// waits, demand copies, CPU experts, prefetches, evictions, bytes from each tier, predictor
// precision and recall.
//
// What the replay cannot know is time: when a prefetch lands. It assumes every transfer started
// by a layer has landed when the next layer is planned (what a copy engine keeps up with, and
// what the host-only engine in synchronous mode does exactly). Under that assumption the counts
// equal the executor's; with slower copies some hits become waits (a wait is not a demand copy:
// `served()` counts both).
//
// Pure and deterministic (no files, no clocks). Thread-safety: none.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cache/cost_model.h"
#include "cache/hot_set.h"
#include "cache/plan.h"
#include "cache/policy.h"
#include "cache/prediction_scorer.h"
#include "cache/predictor.h"
#include "cache/routing_trace.h"
#include "cache/slot_cache.h"

namespace cs {

class MissPathChooser;

struct ReplayConfig {
  int gpu_slots = 0;  // GPU expert slots (the executor's VRAM plan)
  SlotAllocation allocation = SlotAllocation::kGlobal;
  std::vector<int> layer_slots;  // per-layer allocation: slots per MoE layer (empty: even)
  PolicyKind policy = PolicyKind::kRouterFreq;  // kBelady: the trace's own future
  double decay = 0.9;
  PredictorKind predictor = PredictorKind::kLookahead;
  int horizon = 1;  // REQUIRES for lookahead: <= trace header.lookahead
  double threshold = 0.05;
  int top_k = 0;
  double prefetch_share = 0.5;
  int prefetch_copies = 0;
  MissPath miss_path = MissPath::kStream;
  MissPathChooser* chooser = nullptr;  // not owned; overrides miss_path (the hybrid mode)
  int host_slots = 0;                  // host-RAM cache over NVMe; 0: every expert in RAM
  PolicyKind host_policy = PolicyKind::kLru;
  std::vector<HotSetEntry> hot_set;
  // Predicted time (optional): each layer's passes through the cost model, with the prefetch
  // copies a layer starts occupying the copy channel of the next layer's first pass; plus the
  // non-expert work of each step: step_seconds (a one-token step) + token_seconds * (T - 1).
  // `expert_scale` multiplies the cost model's time of every pass (a measured correction: see
  // runtime/eval/tune_check.h).
  const CostModel* cost = nullptr;  // not owned
  double step_seconds = 0, token_seconds = 0;
  double expert_scale = 1;
};

struct ReplayResult {
  uint64_t steps = 0, tokens = 0;
  uint64_t expert_uses = 0, hits = 0, prefetch_hits = 0, waits = 0, demand = 0, cpu = 0;
  uint64_t prefetches = 0, gpu_copies = 0, nvme_reads = 0;  // transfers, hot set excluded
  uint64_t gpu_evictions = 0, host_evictions = 0, passes = 0, drains = 0;
  uint64_t hot_loaded = 0;  // hot-set experts placed at start
  uint64_t bytes_host_to_gpu = 0, bytes_nvme_to_host = 0;
  uint64_t prefill_tokens = 0, decode_tokens = 0;  // tokens in steps of T > 1 and T == 1
  // Transfers and CPU work in decode steps only (what decode tok/s depends on).
  uint64_t decode_gpu_copies = 0, decode_nvme_reads = 0, decode_cpu = 0;
  PredictionCounts prediction;
  std::vector<PredictionCounts> per_layer;
  // With a cost model: predicted seconds of every step, and of the decode (T == 1) and prefill
  // steps.
  double seconds = 0, decode_seconds = 0, prefill_seconds = 0;
  double decode_tok_s() const {
    return decode_seconds > 0 ? double(decode_tokens) / decode_seconds : 0;
  }
  double prefill_tok_s() const {
    return prefill_seconds > 0 ? double(prefill_tokens) / prefill_seconds : 0;
  }

  double hit_rate() const { return expert_uses ? double(hits) / double(expert_uses) : 0.0; }
  // Uses served from a GPU slot without a demand copy (hits and waits for prefetches).
  double served_rate() const {
    return expert_uses ? double(hits + waits) / double(expert_uses) : 0.0;
  }
};

// Throws cs::Error when the configuration does not fit the trace (a horizon past the recorded
// lookahead, too few slots for one token).
ReplayResult replay_trace(const RoutingTrace& trace, const ReplayConfig& config);

// The cost model's time of one layer's plan as the replay charges it (before expert_scale):
// every pass, the first behind the `carried` prefetch copies the previous layer left on the copy
// channel; `carried` becomes this plan's prefetch copies.
double plan_seconds(const LayerPlan& plan, const CostModel& cost, int& carried);

// Belady's optimum for the trace: a cache of `gpu_slots` slots with the offline-optimal policy,
// no prefetching, every miss streamed. No online policy of the same size can beat its hit rate.
ReplayResult replay_belady(const RoutingTrace& trace, int gpu_slots, SlotAllocation allocation);

// Hot set from a trace: experts by total router weight over the trace, highest first.
std::vector<HotSetEntry> hot_set_from_trace(const RoutingTrace& trace, int n);

std::string describe(const ReplayConfig& c);  // one line, for tables and logs

}  // namespace cs
