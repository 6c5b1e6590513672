// Eviction policies: which resident expert leaves when a slot is needed.
//
// A policy ranks the experts resident in each partition of a cache (one partition for global
// slot allocation, one per layer for per-layer allocation); the lowest rank is evicted first.
// It hears about every routed expert, resident or not (router frequency and LFU keep history
// for experts that are not cached), and about insertions and evictions. It never decides
// whether a slot may be evicted: the cache passes that in (in-flight copies, experts in use
// and the pinned hot set are never offered).
//
// Time is the cache clock (cache/expert_id.h): one tick per MoE layer executed.
// Everything is deterministic: equal ranks are broken by expert id.
//
// Thread-safety: none; a policy belongs to one cache.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "cache/expert_id.h"

namespace cs {

enum class PolicyKind : uint8_t {
  kLru,         // least recently routed
  kLfu,         // least often routed (ties: least recent)
  kRouterFreq,  // smallest exponentially decayed sum of router probabilities (ties: least recent)
  kBelady,      // farthest next use in a known future trace: the offline optimum (simulator only)
};

const char* policy_name(PolicyKind k);  // "lru", "lfu", "router_freq", "belady"
std::optional<PolicyKind> parse_policy_kind(std::string_view name);

struct PolicyParams {
  int n_layers = 0;  // the id space: layers x experts
  int n_experts = 0;
  int n_partitions = 1;  // partitions of the cache the policy ranks
  // router_freq: weight of a probability one step old relative to a fresh one, in (0, 1].
  // 0.9 halves a route's weight after about 6.6 steps (tokens).
  double decay = 0.9;
};

// The routing of the future, for Belady: the ticks at which each expert will be routed.
class FutureTrace {
 public:
  FutureTrace(int n_layers, int n_experts);
  // REQUIRES: ticks of one expert are added in increasing order.
  void add(ExpertId id, uint64_t tick);
  // The first tick strictly after `now` at which `id` is routed; nullopt when never again.
  std::optional<uint64_t> next_use(ExpertId id, uint64_t now) const;
  int n_layers() const { return n_layers_; }
  int n_experts() const { return n_experts_; }

 private:
  int n_layers_, n_experts_;
  std::vector<std::vector<uint64_t>> uses_;  // [layer * E + expert] -> ticks, increasing
};

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual PolicyKind kind() const = 0;
  // The router sent tokens to `id` at `now`; `prob` is the largest router probability any token
  // of the step gave it (the weight before top-k renormalisation is not needed: any monotone
  // score works).
  virtual void on_route(ExpertId id, float prob, uint64_t now) = 0;
  // `id` now occupies a slot of `partition` (a demand copy or a prefetch started).
  virtual void on_insert(ExpertId id, int partition, uint64_t now) = 0;
  // `id` left its slot (evicted, or its copy failed).
  virtual void on_erase(ExpertId id) = 0;
  // The lowest-ranked resident expert of `partition` for which `evictable` is true.
  virtual std::optional<ExpertId> victim(int partition,
                                         const std::function<bool(ExpertId)>& evictable) const = 0;
};

// LRU, LFU or router-frequency. For Belady use make_belady_policy.
std::unique_ptr<EvictionPolicy> make_policy(PolicyKind kind, const PolicyParams& params);
std::unique_ptr<EvictionPolicy> make_belady_policy(const PolicyParams& params,
                                                   std::shared_ptr<const FutureTrace> future);

}  // namespace cs
