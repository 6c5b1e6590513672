// The planner: from a layer's routing, the predictions and the current residency, the plan of
// that layer (cache/plan.h). It updates the caches as if the plan had been carried out, so the
// next call sees the new state; the executor reports only what the plan cannot know (prefetch
// copies that arrived or failed).
//
// Every miss is a decision with two paths, stream or CPU (MissPath). A MissPathChooser makes it
// per expert (the hybrid cost model); without one the configured path applies to every miss.
//
// Contracts with the executor (offload/, runtime/engine/offload_moe_executor):
// - GPU slots of a pass's experts are pinned until the next pass or layer is planned; the
//   executor must not let a later copy overwrite a slot before the compute reading it is done.
// - Host slots that a pass copies from or computes on the CPU are pinned by the planner until the
//   next pass or layer is planned (the executor finishes a pass before starting the next).
//   Host slots that a prefetch copies from are pinned by the planner and unpinned by the
//   executor when that copy has landed (or failed).
// - Demand copies and their NVMe reads complete before their pass computes (recorded resident at
//   once); prefetches are reported with SlotCache::loaded() or abort().
//
// Thread-safety: none. Deterministic.
#pragma once

#include <cstdint>
#include <vector>

#include "cache/hot_set.h"
#include "cache/plan.h"
#include "cache/predictor.h"
#include "cache/slot_cache.h"

namespace cs {

struct MissInfo {
  ExpertId id;
  int tokens = 0;        // tokens of the pass routed to it
  int T = 0;             // tokens in the pass
  bool in_host = false;  // in host RAM (or arriving there); otherwise it must come from NVMe
};

// What the rest of a pass holds when its misses are decided.
struct PassInfo {
  int layer = -1;
  int T = 0;           // tokens in the pass
  int hits = 0;        // experts resident in a GPU slot
  int waits = 0;       // experts whose prefetch copy is in flight
  int hit_tokens = 0;  // token-expert pairs of the hits and waits
};

// Chooses the path of each miss (cache/hybrid_chooser.h implements this from a cost model).
// For each pass the planner calls begin_pass() with every miss of the pass, then choose() once
// per miss in the same order, so an implementation can split the pass as a whole.
class MissPathChooser {
 public:
  virtual ~MissPathChooser() = default;
  virtual void begin_pass(const PassInfo& pass, const std::vector<MissInfo>& misses) {
    (void)pass;
    (void)misses;
  }
  virtual MissPath choose(const MissInfo& miss) = 0;
};

struct PlannerOptions {
  int k = 0;                               // experts routed per token
  MissPath miss_path = MissPath::kStream;  // every miss, when no chooser is set
  MissPathChooser* chooser = nullptr;      // not owned
  // Prefetches stop while this share of a partition's slots is loading.
  double prefetch_share = 0.5;
  // ... or while this many prefetch copies are loading in a partition (0: no such cap). Bounds
  // the copy channel's backlog (predictions come best first, so the cap keeps the likeliest).
  int prefetch_copies = 0;
};

class Planner {
 public:
  // `host` is the host-RAM cache over the NVMe tier, or null when every expert is in RAM.
  Planner(SlotCache& gpu, SlotCache* host, PlannerOptions options);

  // A forward pass over all layers begins (ticks of this step: step * n_layers + layer).
  void begin_step(uint64_t step) { step_ = step; }
  uint64_t step() const { return step_; }
  const PlannerOptions& options() const { return opt_; }

  // Plans `routing.layer`. Throws cs::Error (kOutOfMemory) when one token's experts can never
  // fit the layer's slots.
  LayerPlan plan(const LayerRouting& routing, const Prediction& predicted);

  // Copies that load the pinned hot set into GPU slots (hot slots are never evicted). Entries
  // that would leave a partition fewer than k evictable slots are skipped (returned in
  // `skipped` when given).
  std::vector<PlanCopy> plan_hot_set(const std::vector<HotSetEntry>& hot,
                                     std::vector<ExpertId>* skipped = nullptr);

 private:
  bool in_host(ExpertId id) const;
  int host_cost(ExpertId id) const;
  void release_host_pins();
  HostFetch fetch_for_demand(ExpertId id, uint64_t tick);
  void add_pass(LayerPlan& plan, int t0, int t1, const std::vector<ExpertId>& experts,
                const std::vector<int>& tokens, int T, uint64_t tick);
  void add_prefetches(LayerPlan& plan, const Prediction& predicted, uint64_t tick);

  SlotCache& gpu_;
  SlotCache* host_;
  PlannerOptions opt_;
  uint64_t step_ = 0;
  uint64_t routed_tick_ = ~uint64_t(0);  // routing already told to the policies at this tick
  std::vector<ExpertId> host_pins_;      // host pins of the pass planned last
};

}  // namespace cs
