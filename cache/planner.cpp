#include "cache/planner.h"

#include <algorithm>
#include <climits>
#include <unordered_map>

#include "common/error.h"

namespace cs {

Planner::Planner(SlotCache& gpu, SlotCache* host, PlannerOptions options)
    : gpu_(gpu), host_(host), opt_(options) {
  if (opt_.k <= 0) fail(ErrorKind::kInvalidArgument, "planner: k = {}", opt_.k);
  if (!(opt_.prefetch_share >= 0 && opt_.prefetch_share <= 1))
    fail(ErrorKind::kInvalidArgument, "planner: prefetch share {} outside [0, 1]",
         opt_.prefetch_share);
  for (int p = 0; p < gpu_.n_partitions(); ++p)
    if (gpu_.partition_size(p) < opt_.k)
      fail(ErrorKind::kOutOfMemory,
           "expert cache: {} GPU slots for layer partition {}, but a token needs {} experts",
           gpu_.partition_size(p), p, opt_.k);
  if (host_ && host_->n_slots() < opt_.k)
    fail(ErrorKind::kOutOfMemory, "host expert cache: {} slots, but a token needs {} experts",
         host_->n_slots(), opt_.k);
}

bool Planner::in_host(ExpertId id) const {
  return !host_ || host_->find(id) >= 0;
}

// Evictable host slots a miss of this pass takes: one to read into, or the evictable slot it
// already occupies (it gets pinned); none when its host slot is loading or pinned anyway.
int Planner::host_cost(ExpertId id) const {
  if (!host_) return 0;
  const int s = host_->find(id);
  if (s < 0) return 1;
  const SlotInfo& i = host_->slot(s);
  return i.state == SlotState::kResident && i.pins == 0 && !i.hot;
}

void Planner::release_host_pins() {
  for (ExpertId id : host_pins_)
    if (host_->find(id) >= 0 && host_->slot(host_->find(id)).pins > 0) host_->unpin(id);
  host_pins_.clear();
}

// Host RAM side of a demand copy or CPU computation: read from NVMe when absent, pin either way
// (until the next pass or layer is planned).
// REQUIRES: when `id` is in host RAM, add_pass has pinned it already.
HostFetch Planner::fetch_for_demand(ExpertId id, uint64_t tick) {
  HostFetch f;
  if (!host_) return f;
  if (host_->find(id) < 0) {
    const auto a = host_->allocate(id, Purpose::kDemand, tick);
    if (!a) fail(ErrorKind::kInternal, "planner: no host slot for {}", to_string(id));
    f.read = true;
    f.evicted = a->evicted;
    host_->loaded(id);  // demand reads complete before use (see the contract above)
    host_->pin(id);
    host_pins_.push_back(id);
  }
  f.host_slot = host_->find(id);
  return f;
}

LayerPlan Planner::plan(const LayerRouting& r, const Prediction& predicted) {
  const CacheGeometry& g = gpu_.geometry();
  const uint64_t tick = CacheClock{step_, r.layer}.tick(g.n_layers);
  LayerPlan plan;
  plan.layer = r.layer;
  plan.tick = tick;
  const int p = gpu_.partition_of({r.layer, 0});
  if (p < 0) fail(ErrorKind::kInternal, "planner: layer {} has no expert slots", r.layer);
  gpu_.unpin_all();
  if (host_) release_host_pins();

  // Distinct experts in order of first appearance; per token, indices into that list.
  std::vector<int> index(size_t(g.n_experts), -1), token_experts(size_t(r.T) * size_t(r.k));
  for (int t = 0; t < r.T; ++t)
    for (int j = 0; j < r.k; ++j) {
      const int e = r.ids[size_t(t) * size_t(r.k) + size_t(j)];
      if (e < 0 || e >= g.n_experts)
        fail(ErrorKind::kInternal, "planner: layer {} token {} routed to expert {} of {}", r.layer,
             t, e, g.n_experts);
      if (index[size_t(e)] < 0) {
        index[size_t(e)] = int(plan.routed.size());
        plan.routed.push_back({{r.layer, e}, 0, 0.0f});
      }
      RoutedExpert& x = plan.routed[size_t(index[size_t(e)])];
      ++x.tokens;
      x.max_weight =
          std::max(x.max_weight, r.weights ? r.weights[size_t(t) * size_t(r.k) + j] : 1.0f);
      token_experts[size_t(t) * size_t(r.k) + size_t(j)] = index[size_t(e)];
    }
  if (routed_tick_ != tick) {
    for (const RoutedExpert& x : plan.routed) {
      gpu_.route(x.id, x.max_weight, tick);
      if (host_) host_->route(x.id, x.max_weight, tick);
    }
    routed_tick_ = tick;
  }

  // One token must fit: k slots besides hot and loading ones (and k host slots when experts
  // come from NVMe). Otherwise in-flight prefetches block the layer: drain them first.
  bool needs_host = false;
  for (const RoutedExpert& x : plan.routed) needs_host = needs_host || !in_host(x.id);
  const int host_room = needs_host ? host_->evictable_count(0) : INT_MAX;
  if (gpu_.usable(p) < r.k || host_room < r.k) {
    const bool busy = gpu_.loading_count(p) > 0 || (needs_host && host_->loading_count(0) > 0);
    if (!busy && host_room < r.k)
      fail(ErrorKind::kOutOfMemory,
           "host expert cache: {} host slots free of copies in flight, a token needs {}", host_room,
           r.k);
    if (!busy)
      fail(ErrorKind::kOutOfMemory,
           "expert cache: layer {} has {} usable GPU slots (hot set excluded), a token needs {}",
           r.layer, gpu_.usable(p), r.k);
    plan.drain = true;
    plan.passes.clear();
    return plan;
  }

  // Passes: extend the token range while its experts fit the usable slots.
  std::vector<int> in_pass(plan.routed.size(), -1);
  int t = 0, pass_no = 0;
  while (t < r.T) {
    if (pass_no > 0) {  // the previous pass's slots may now be evicted
      gpu_.unpin_all();
      if (host_) release_host_pins();
    }
    const int usable = gpu_.usable(p);
    const int host_free = needs_host ? host_->evictable_count(0) : INT_MAX;
    std::vector<int> experts;
    int need_gpu = 0, need_host = 0, end = t;
    while (end < r.T) {
      int g_add = 0, h_add = 0;
      std::vector<int> fresh;
      for (int j = 0; j < r.k; ++j) {
        const int x = token_experts[size_t(end) * size_t(r.k) + size_t(j)];
        if (in_pass[size_t(x)] == pass_no || std::count(fresh.begin(), fresh.end(), x)) continue;
        fresh.push_back(x);
        const ExpertId id = plan.routed[size_t(x)].id;
        const int s = gpu_.find(id);
        if (s >= 0 && gpu_.slot(s).hot) continue;
        if (s >= 0 && gpu_.slot(s).state == SlotState::kLoading) continue;
        if (s < 0) h_add += host_cost(id);
        if (s < 0 && opt_.miss_path == MissPath::kCpu && !opt_.chooser) continue;
        ++g_add;  // resident (stays pinned) or a miss counted as a stream copy
      }
      if (need_gpu + g_add > usable || need_host + h_add > host_free) break;
      need_gpu += g_add;
      need_host += h_add;
      for (int x : fresh) {
        in_pass[size_t(x)] = pass_no;
        experts.push_back(x);
      }
      ++end;
    }
    if (end == t)
      fail(ErrorKind::kInternal, "planner: token {} of layer {} does not fit {} usable slots", t,
           r.layer, usable);
    // Tokens per expert within the pass.
    std::vector<int> tokens(experts.size(), 0);
    std::vector<ExpertId> ids;
    for (int x : experts) ids.push_back(plan.routed[size_t(x)].id);
    for (int u = t; u < end; ++u)
      for (int j = 0; j < r.k; ++j) {
        const int x = token_experts[size_t(u) * size_t(r.k) + size_t(j)];
        tokens[size_t(std::find(experts.begin(), experts.end(), x) - experts.begin())] += 1;
      }
    add_pass(plan, t, end, ids, tokens, end - t, tick);
    t = end;
    ++pass_no;
  }
  gpu_.close_prefetch_window(r.layer);
  add_prefetches(plan, predicted, tick);
  return plan;
}

void Planner::add_pass(LayerPlan& plan, int t0, int t1, const std::vector<ExpertId>& experts,
                       const std::vector<int>& tokens, int T, uint64_t tick) {
  PlanPass pass;
  pass.t_begin = t0;
  pass.t_end = t1;
  // Pin what is present first, so that no miss of this pass evicts an expert the pass uses.
  for (const ExpertId id : experts) {
    const int s = gpu_.find(id);
    if (s < 0) continue;
    const SlotInfo& info = gpu_.slot(s);
    const PlanHit h{id, s, info.prefetched};
    const bool wait = info.state != SlotState::kResident;
    (wait ? pass.waits : pass.hits).push_back(h);
    // The executor waits for the copy before the pass computes (as for demand copies), so the
    // expert counts as arrived from here on: once this pass is over, later passes may evict it.
    if (wait) gpu_.loaded(id);
    gpu_.mark_used(id);
    gpu_.pin(id);
  }
  // Likewise in host RAM: the misses already there are pinned before any host slot is taken.
  if (host_)
    for (const ExpertId id : experts)
      if (gpu_.find(id) < 0 && host_->find(id) >= 0) {
        host_->mark_used(id);
        host_->pin(id);
        host_pins_.push_back(id);
      }
  std::vector<MissInfo> misses;
  PassInfo info{plan.layer, T, int(pass.hits.size()), int(pass.waits.size()), 0};
  for (size_t i = 0; i < experts.size(); ++i) {
    if (gpu_.find(experts[i]) >= 0)
      info.hit_tokens += tokens[i];
    else
      misses.push_back({experts[i], tokens[i], T, in_host(experts[i])});
  }
  if (opt_.chooser) opt_.chooser->begin_pass(info, misses);
  for (const MissInfo& miss : misses) {
    const ExpertId id = miss.id;
    const MissPath path = opt_.chooser ? opt_.chooser->choose(miss) : opt_.miss_path;
    if (path == MissPath::kCpu) {
      pass.cpu.push_back({id, fetch_for_demand(id, tick), miss.tokens});
      continue;
    }
    const auto a = gpu_.allocate(id, Purpose::kDemand, tick);
    if (!a) fail(ErrorKind::kInternal, "planner: no GPU slot for {}", to_string(id));
    gpu_.loaded(id);  // demand copies complete before the pass computes
    gpu_.mark_used(id);
    gpu_.pin(id);
    pass.demand.push_back({id, a->slot, a->evicted, fetch_for_demand(id, tick), miss.tokens});
  }
  plan.passes.push_back(std::move(pass));
}

void Planner::add_prefetches(LayerPlan& plan, const Prediction& predicted, uint64_t tick) {
  for (const PredictedExpert& pe : predicted.experts) {
    const ExpertId id = pe.id;
    const int p = gpu_.partition_of(id);
    if (p < 0 || gpu_.find(id) >= 0) continue;
    int cap = std::max(1, int(opt_.prefetch_share * gpu_.partition_size(p)));
    if (opt_.prefetch_copies > 0) cap = std::min(cap, opt_.prefetch_copies);
    HostFetch host;
    if (host_ && host_->find(id) < 0) {
      if (host_->loading_count(0) >= std::max(1, int(opt_.prefetch_share * host_->n_slots())))
        continue;
      const auto h = host_->allocate(id, Purpose::kPrefetch, tick);
      if (!h) continue;
      host.read = true;
      host.evicted = h->evicted;
    }
    if (host_) host.host_slot = host_->find(id);
    PlanCopy c;
    c.id = id;
    c.host = host;
    if (gpu_.loading_count(p) < cap) {
      if (const auto a = gpu_.allocate(id, Purpose::kPrefetch, tick)) {
        c.slot = a->slot;
        c.evicted = a->evicted;
        if (host_) host_->pin(id);  // the GPU copy will read it
      }
    }
    if (c.slot >= 0 || c.host.needed()) plan.prefetches.push_back(c);
  }
}

std::vector<PlanCopy> Planner::plan_hot_set(const std::vector<HotSetEntry>& hot,
                                            std::vector<ExpertId>* skipped) {
  std::vector<PlanCopy> out;
  for (const HotSetEntry& e : hot) {
    const int p = gpu_.partition_of(e.id);
    const bool fits = p >= 0 && gpu_.find(e.id) < 0 && gpu_.usable(p) > opt_.k;
    const auto a = fits ? gpu_.allocate(e.id, Purpose::kHot, 0) : std::nullopt;
    if (!a) {
      if (skipped) skipped->push_back(e.id);
      continue;
    }
    gpu_.loaded(e.id);
    if (host_ && host_->find(e.id) >= 0) {
      host_->pin(e.id);
      host_pins_.push_back(e.id);
    }
    out.push_back({e.id, a->slot, a->evicted, fetch_for_demand(e.id, 0), 0});
  }
  return out;
}

}  // namespace cs
