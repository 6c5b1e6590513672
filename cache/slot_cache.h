// Residency of experts in a fixed set of equally sized slots (GPU slots, or host-RAM slots over
// the NVMe tier): which expert is in which slot, what may be evicted, and which slot a newcomer
// gets. Pure bookkeeping; the bytes are moved by offload/.
//
// Slot states: free -> loading (a copy is in flight) -> resident -> (evicted) -> loading ...
// Never evicted: loading slots (the copy is still writing), pinned slots (in use by the layer
// being computed, or the source of a copy in flight), the hot set. Prefetched experts that have
// not been used yet are not evicted by other prefetches (demand copies may take them).
//
// Slots are split into partitions: one for global allocation, or one per cached layer (each
// layer competes only with itself). The policy ranks the experts within each partition.
//
// Thread-safety: none; owned by one planner.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include "cache/expert_id.h"
#include "cache/policy.h"

namespace cs {

enum class SlotAllocation : uint8_t { kGlobal, kPerLayer };
const char* slot_allocation_name(SlotAllocation a);  // "global", "per_layer"
std::optional<SlotAllocation> parse_slot_allocation(std::string_view name);

struct CacheGeometry {
  int n_slots = 0;
  int n_layers = 0, n_experts = 0;  // the id space
  SlotAllocation allocation = SlotAllocation::kGlobal;
  // Layers whose experts are cached (the MoE layers). Per-layer allocation makes one partition
  // for each; global allocation accepts experts of these layers only.
  std::vector<int> layers;
  // Per-layer allocation: slots of each layer of `layers` (same order). Empty: n_slots split
  // evenly, the remainder going to the first layers.
  std::vector<int> layer_slots;
};

// Partitions a geometry makes: 1 (global) or one per cached layer. Policies ranking a cache are
// built with this many partitions (PolicyParams::n_partitions).
int cache_partitions(const CacheGeometry& g);

enum class SlotState : uint8_t { kFree, kLoading, kResident };

struct SlotInfo {
  ExpertId id;  // kNoExpert when free
  SlotState state = SlotState::kFree;
  int partition = 0;
  int pins = 0;             // > 0: not evictable
  bool hot = false;         // pinned hot set: never evicted
  bool prefetched = false;  // arrived or arriving by prefetch, not used yet
};

// Why a slot is being taken: prefetches may not evict unused prefetches; hot experts stay.
enum class Purpose : uint8_t { kDemand, kPrefetch, kHot };

class SlotCache {
 public:
  // Throws cs::Error when the geometry is inconsistent (no slots, quotas not summing up).
  SlotCache(const CacheGeometry& geometry, std::unique_ptr<EvictionPolicy> policy);

  int n_slots() const { return int(slots_.size()); }
  int n_partitions() const { return int(parts_.size()); }
  // The partition an expert's layer uses; -1 when its layer is not cached.
  int partition_of(ExpertId id) const;
  int partition_size(int p) const { return parts_.at(size_t(p)).size; }
  // Slots of partition p a pass may use: neither hot nor loading (pins are ignored: the planner
  // releases them between passes).
  int usable(int p) const;
  // Slots of partition p loading right now (not hot).
  int loading_count(int p) const { return parts_.at(size_t(p)).loading; }
  // Slots of partition p a demand allocation could take right now: free, or resident, unpinned
  // and not hot. O(partition size).
  int evictable_count(int p) const;
  const CacheGeometry& geometry() const { return geometry_; }
  const EvictionPolicy& policy() const { return *policy_; }

  int find(ExpertId id) const;  // the slot holding or loading `id`, or -1
  const SlotInfo& slot(int s) const { return slots_.at(size_t(s)); }
  bool resident(ExpertId id) const;
  bool loading(ExpertId id) const;
  std::vector<ExpertId> loading_experts() const;  // in slot order

  // Tells the policy that the router chose `id` (resident or not).
  void route(ExpertId id, float prob, uint64_t now) { policy_->on_route(id, prob, now); }

  struct Allocation {
    int slot = -1;
    ExpertId evicted;  // kNoExpert when the slot was free
  };
  // Takes a slot for `id` (free first, lowest index; else the policy's victim among the
  // evictable) and marks it loading. nullopt when every slot of the partition is protected.
  // REQUIRES: `id` is not present and its layer is cached.
  std::optional<Allocation> allocate(ExpertId id, Purpose purpose, uint64_t now);
  void loaded(ExpertId id);  // loading -> resident
  void abort(ExpertId id);   // a failed copy: loading -> free
  // Removes a resident, unpinned, non-hot expert (used when its bytes are known bad).
  void erase(ExpertId id);
  // Removes `id` whatever its state, pins or hotness (rolling back a plan that failed midway).
  // No-op when absent.
  void drop(ExpertId id);

  void pin(ExpertId id);
  void unpin(ExpertId id);
  void unpin_all();
  // `id` was used by its layer: it is no longer an unused prefetch.
  void mark_used(ExpertId id);
  // The prefetch window of `layer` closed (the layer ran): its unused prefetches lose their
  // protection.
  void close_prefetch_window(int layer);

  uint64_t evictions() const { return evictions_; }

 private:
  struct Partition {
    int first = 0, size = 0;
    std::set<int> free;  // free slots, lowest first
    int hot = 0;         // hot slots
    int loading = 0;     // loading slots that are not hot
  };
  SlotInfo& mut(ExpertId id);
  bool evictable(const SlotInfo& s, Purpose purpose) const;
  void evict(int slot);

  CacheGeometry geometry_;
  std::unique_ptr<EvictionPolicy> policy_;
  std::vector<SlotInfo> slots_;
  std::vector<Partition> parts_;
  std::vector<int> layer_part_;                    // per layer: partition, -1 when not cached
  std::vector<int> where_;                         // per expert index: slot, -1
  std::vector<int> pinned_;                        // slots with pins > 0
  std::vector<std::vector<ExpertId>> prefetched_;  // per layer: unused prefetches
  uint64_t evictions_ = 0;
};

// A cache with a runtime policy (not Belady) built for this geometry.
std::unique_ptr<SlotCache> make_slot_cache(const CacheGeometry& geometry, PolicyKind policy,
                                           double decay);

}  // namespace cs
