#include "cache/slot_cache.h"

#include <algorithm>

#include "common/error.h"

namespace cs {

const char* slot_allocation_name(SlotAllocation a) {
  return a == SlotAllocation::kGlobal ? "global" : "per_layer";
}

std::optional<SlotAllocation> parse_slot_allocation(std::string_view name) {
  if (name == "global") return SlotAllocation::kGlobal;
  if (name == "per_layer") return SlotAllocation::kPerLayer;
  return std::nullopt;
}

int cache_partitions(const CacheGeometry& g) {
  return g.allocation == SlotAllocation::kGlobal ? 1 : int(g.layers.size());
}

SlotCache::SlotCache(const CacheGeometry& g, std::unique_ptr<EvictionPolicy> policy)
    : geometry_(g), policy_(std::move(policy)) {
  if (!policy_) fail(ErrorKind::kInvalidArgument, "expert cache: no policy");
  if (g.n_slots <= 0) fail(ErrorKind::kOutOfMemory, "expert cache: no slots (got {})", g.n_slots);
  if (g.n_layers <= 0 || g.n_experts <= 0 || g.layers.empty())
    fail(ErrorKind::kInvalidArgument, "expert cache: no cached layers");
  layer_part_.assign(size_t(g.n_layers), -1);
  where_.assign(size_t(g.n_layers) * size_t(g.n_experts), -1);
  prefetched_.resize(size_t(g.n_layers));
  slots_.resize(size_t(g.n_slots));
  std::vector<int> sizes;
  if (g.allocation == SlotAllocation::kGlobal) {
    sizes = {g.n_slots};
  } else if (!g.layer_slots.empty()) {
    if (g.layer_slots.size() != g.layers.size())
      fail(ErrorKind::kInvalidArgument, "expert cache: {} per-layer slot counts for {} layers",
           g.layer_slots.size(), g.layers.size());
    sizes = g.layer_slots;
    int sum = 0;
    for (int s : sizes) sum += s;
    if (sum != g.n_slots)
      fail(ErrorKind::kInvalidArgument, "expert cache: per-layer slots sum to {}, not {}", sum,
           g.n_slots);
  } else {
    const int n = int(g.layers.size());
    for (int i = 0; i < n; ++i) sizes.push_back(g.n_slots / n + (i < g.n_slots % n ? 1 : 0));
  }
  int first = 0;
  for (size_t p = 0; p < sizes.size(); ++p) {
    if (sizes[p] <= 0)
      fail(ErrorKind::kOutOfMemory,
           "expert cache: layer {} gets no slot ({} slots over {} layers, per-layer allocation)",
           g.layers[p], g.n_slots, g.layers.size());
    Partition part;
    part.first = first;
    part.size = sizes[p];
    for (int s = first; s < first + sizes[p]; ++s) {
      part.free.insert(s);
      slots_[size_t(s)].partition = int(p);
    }
    first += sizes[p];
    parts_.push_back(std::move(part));
  }
  for (size_t i = 0; i < g.layers.size(); ++i) {
    const int l = g.layers[i];
    if (l < 0 || l >= g.n_layers)
      fail(ErrorKind::kInvalidArgument, "expert cache: layer {} out of range", l);
    layer_part_[size_t(l)] = g.allocation == SlotAllocation::kGlobal ? 0 : int(i);
  }
}

int SlotCache::partition_of(ExpertId id) const {
  if (id.layer < 0 || size_t(id.layer) >= layer_part_.size()) return -1;
  return layer_part_[size_t(id.layer)];
}

int SlotCache::usable(int p) const {
  const Partition& part = parts_.at(size_t(p));
  return part.size - part.hot - part.loading;
}

int SlotCache::evictable_count(int p) const {
  const Partition& part = parts_.at(size_t(p));
  int n = 0;
  for (int s = part.first; s < part.first + part.size; ++s) {
    const SlotInfo& i = slots_[size_t(s)];
    n += i.state == SlotState::kFree || evictable(i, Purpose::kDemand);
  }
  return n;
}

int SlotCache::find(ExpertId id) const {
  if (partition_of(id) < 0 || id.expert < 0 || id.expert >= geometry_.n_experts) return -1;
  return where_[id.index(geometry_.n_experts)];
}

bool SlotCache::resident(ExpertId id) const {
  const int s = find(id);
  return s >= 0 && slots_[size_t(s)].state == SlotState::kResident;
}

bool SlotCache::loading(ExpertId id) const {
  const int s = find(id);
  return s >= 0 && slots_[size_t(s)].state == SlotState::kLoading;
}

std::vector<ExpertId> SlotCache::loading_experts() const {
  std::vector<ExpertId> out;
  for (const SlotInfo& s : slots_)
    if (s.state == SlotState::kLoading) out.push_back(s.id);
  return out;
}

SlotInfo& SlotCache::mut(ExpertId id) {
  const int s = find(id);
  if (s < 0) fail(ErrorKind::kInternal, "expert cache: {} is not in the cache", to_string(id));
  return slots_[size_t(s)];
}

bool SlotCache::evictable(const SlotInfo& s, Purpose purpose) const {
  return s.state == SlotState::kResident && s.pins == 0 && !s.hot &&
         !(purpose == Purpose::kPrefetch && s.prefetched);
}

void SlotCache::evict(int slot) {
  SlotInfo& s = slots_[size_t(slot)];
  policy_->on_erase(s.id);
  where_[s.id.index(geometry_.n_experts)] = -1;
  if (s.prefetched) std::erase(prefetched_[size_t(s.id.layer)], s.id);
  s = SlotInfo{kNoExpert, SlotState::kFree, s.partition, 0, false, false};
  ++evictions_;
}

std::optional<SlotCache::Allocation> SlotCache::allocate(ExpertId id, Purpose purpose,
                                                         uint64_t now) {
  const int p = partition_of(id);
  if (p < 0 || id.expert < 0 || id.expert >= geometry_.n_experts)
    fail(ErrorKind::kInternal, "expert cache: {} is not a cached expert", to_string(id));
  if (find(id) >= 0)
    fail(ErrorKind::kInternal, "expert cache: {} is already present", to_string(id));
  Partition& part = parts_[size_t(p)];
  Allocation a;
  if (!part.free.empty()) {
    a.slot = *part.free.begin();
    part.free.erase(part.free.begin());
  } else {
    const auto v = policy_->victim(p, [&](ExpertId e) {
      return evictable(slots_[size_t(where_[e.index(geometry_.n_experts)])], purpose);
    });
    if (!v) return std::nullopt;
    a.slot = where_[v->index(geometry_.n_experts)];
    a.evicted = *v;
    evict(a.slot);
  }
  SlotInfo& s = slots_[size_t(a.slot)];
  s.id = id;
  s.state = SlotState::kLoading;
  s.hot = purpose == Purpose::kHot;
  s.prefetched = purpose == Purpose::kPrefetch;
  if (s.hot)
    ++part.hot;
  else
    ++part.loading;
  if (s.prefetched) prefetched_[size_t(id.layer)].push_back(id);
  where_[id.index(geometry_.n_experts)] = a.slot;
  policy_->on_insert(id, p, now);
  return a;
}

void SlotCache::loaded(ExpertId id) {
  SlotInfo& s = mut(id);
  if (s.state != SlotState::kLoading)
    fail(ErrorKind::kInternal, "expert cache: {} was not loading", to_string(id));
  s.state = SlotState::kResident;
  if (!s.hot) --parts_[size_t(s.partition)].loading;
}

void SlotCache::abort(ExpertId id) {
  SlotInfo& s = mut(id);
  if (s.state != SlotState::kLoading)
    fail(ErrorKind::kInternal, "expert cache: {} was not loading", to_string(id));
  Partition& part = parts_[size_t(s.partition)];
  if (s.hot)
    --part.hot;
  else
    --part.loading;
  const int slot = find(id);
  s.hot = false;
  if (s.pins > 0) std::erase(pinned_, slot);
  s.pins = 0;
  evict(slot);
  --evictions_;  // a failed copy is not an eviction
  part.free.insert(slot);
}

void SlotCache::erase(ExpertId id) {
  SlotInfo& s = mut(id);
  if (s.state != SlotState::kResident || s.pins > 0 || s.hot)
    fail(ErrorKind::kInternal, "expert cache: {} cannot be erased now", to_string(id));
  const int slot = find(id);
  evict(slot);
  parts_[size_t(slots_[size_t(slot)].partition)].free.insert(slot);
}

void SlotCache::drop(ExpertId id) {
  const int slot = find(id);
  if (slot < 0) return;
  SlotInfo& s = slots_[size_t(slot)];
  if (s.pins > 0) std::erase(pinned_, slot);
  s.pins = 0;
  if (s.state == SlotState::kLoading) {
    abort(id);
    return;
  }
  if (s.hot) {
    --parts_[size_t(s.partition)].hot;
    s.hot = false;
  }
  erase(id);
}

void SlotCache::pin(ExpertId id) {
  SlotInfo& s = mut(id);
  if (s.pins++ == 0) pinned_.push_back(find(id));
}

void SlotCache::unpin(ExpertId id) {
  SlotInfo& s = mut(id);
  if (s.pins <= 0) fail(ErrorKind::kInternal, "expert cache: {} was not pinned", to_string(id));
  if (--s.pins == 0) std::erase(pinned_, find(id));
}

void SlotCache::unpin_all() {
  for (int slot : pinned_) slots_[size_t(slot)].pins = 0;
  pinned_.clear();
}

void SlotCache::mark_used(ExpertId id) {
  SlotInfo& s = mut(id);
  if (!s.prefetched) return;
  s.prefetched = false;
  std::erase(prefetched_[size_t(id.layer)], id);
}

void SlotCache::close_prefetch_window(int layer) {
  if (layer < 0 || size_t(layer) >= prefetched_.size()) return;
  for (ExpertId id : prefetched_[size_t(layer)]) slots_[size_t(find(id))].prefetched = false;
  prefetched_[size_t(layer)].clear();
}

std::unique_ptr<SlotCache> make_slot_cache(const CacheGeometry& geometry, PolicyKind policy,
                                           double decay) {
  PolicyParams p;
  p.n_layers = geometry.n_layers;
  p.n_experts = geometry.n_experts;
  p.n_partitions = cache_partitions(geometry);
  p.decay = decay;
  return std::make_unique<SlotCache>(geometry, make_policy(policy, p));
}

}  // namespace cs
