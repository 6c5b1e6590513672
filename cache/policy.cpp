// The policies share one structure: a per-expert rank kept in an ordered set per partition, so
// finding a victim costs a walk from the lowest rank past the few experts that may not be evicted.
#include "cache/policy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <tuple>

#include "common/error.h"

namespace cs {
namespace {

struct Rank {
  double primary = 0, secondary = 0;
};

class RankedPolicy : public EvictionPolicy {
 public:
  explicit RankedPolicy(const PolicyParams& p)
      : E_(p.n_experts),
        sets_(size_t(std::max(1, p.n_partitions))),
        part_(size_t(p.n_layers) * size_t(p.n_experts), -1),
        rank_(part_.size()) {
    if (p.n_layers <= 0 || p.n_experts <= 0)
      fail(ErrorKind::kInvalidArgument, "cache policy: {} layers x {} experts is empty", p.n_layers,
           p.n_experts);
  }

  void on_route(ExpertId id, float prob, uint64_t now) final {
    routed(idx(id), prob, now);
    refresh(id);
  }
  void on_insert(ExpertId id, int partition, uint64_t now) final {
    const size_t i = idx(id);
    if (part_[i] >= 0) on_erase(id);
    if (partition < 0 || size_t(partition) >= sets_.size())
      fail(ErrorKind::kInternal, "cache policy: partition {} out of range", partition);
    inserted(i, now);
    part_[i] = partition;
    rank_[i] = rank(i);
    sets_[size_t(partition)].insert(key(id, i));
  }
  void on_erase(ExpertId id) final {
    const size_t i = idx(id);
    if (part_[i] < 0) return;
    sets_[size_t(part_[i])].erase(key(id, i));
    part_[i] = -1;
  }
  std::optional<ExpertId> victim(int partition,
                                 const std::function<bool(ExpertId)>& evictable) const final {
    for (const auto& k : sets_.at(size_t(partition)))
      if (evictable(std::get<2>(k))) return std::get<2>(k);
    return std::nullopt;
  }

 protected:
  // Subclasses keep per-expert state indexed by idx(id) and derive a rank from it.
  virtual void routed(size_t i, float prob, uint64_t now) = 0;
  virtual void inserted(size_t i, uint64_t now) = 0;
  virtual Rank rank(size_t i) const = 0;
  size_t idx(ExpertId id) const { return id.index(E_); }
  size_t size() const { return part_.size(); }
  ExpertId id_of(size_t i) const { return {int32_t(i / size_t(E_)), int32_t(i % size_t(E_))}; }

 private:
  using Key = std::tuple<double, double, ExpertId>;
  Key key(ExpertId id, size_t i) const { return {rank_[i].primary, rank_[i].secondary, id}; }
  void refresh(ExpertId id) {
    const size_t i = idx(id);
    if (part_[i] < 0) return;
    auto& s = sets_[size_t(part_[i])];
    s.erase(key(id, i));
    rank_[i] = rank(i);
    s.insert(key(id, i));
  }

  int E_;
  std::vector<std::set<Key>> sets_;  // per partition, lowest rank first
  std::vector<int> part_;            // per expert: its partition, -1 when not resident
  std::vector<Rank> rank_;           // per expert: rank it is filed under while resident
};

class LruPolicy final : public RankedPolicy {
 public:
  explicit LruPolicy(const PolicyParams& p) : RankedPolicy(p), last_(size(), 0) {}
  PolicyKind kind() const override { return PolicyKind::kLru; }

 private:
  void routed(size_t i, float, uint64_t now) override { last_[i] = double(now); }
  void inserted(size_t i, uint64_t now) override { last_[i] = std::max(last_[i], double(now)); }
  Rank rank(size_t i) const override { return {last_[i], 0}; }
  std::vector<double> last_;
};

class LfuPolicy final : public RankedPolicy {
 public:
  explicit LfuPolicy(const PolicyParams& p)
      : RankedPolicy(p), count_(size(), 0), last_(size(), 0) {}
  PolicyKind kind() const override { return PolicyKind::kLfu; }

 private:
  void routed(size_t i, float, uint64_t now) override {
    count_[i] += 1;
    last_[i] = double(now);
  }
  void inserted(size_t i, uint64_t now) override { last_[i] = std::max(last_[i], double(now)); }
  Rank rank(size_t i) const override { return {count_[i], last_[i]}; }
  std::vector<double> count_, last_;
};

// score(e) = sum over routes of prob * decay^(now_step - route_step). All scores share the
// factor decay^now_step, so ranks compare log(sum prob * decay^-route_step), which never
// needs rescaling: log_score += log(prob) - route_step * log(decay), combined with log-add-exp.
class RouterFreqPolicy final : public RankedPolicy {
 public:
  explicit RouterFreqPolicy(const PolicyParams& p)
      : RankedPolicy(p),
        n_layers_(p.n_layers),
        neg_log_decay_(-std::log(p.decay)),
        log_score_(size(), -std::numeric_limits<double>::infinity()),
        last_(size(), 0) {
    if (!(p.decay > 0.0 && p.decay <= 1.0))
      fail(ErrorKind::kInvalidArgument, "router_freq policy: decay must be in (0, 1], got {}",
           p.decay);
  }
  PolicyKind kind() const override { return PolicyKind::kRouterFreq; }

 private:
  void routed(size_t i, float prob, uint64_t now) override {
    const double step = double(now / uint64_t(n_layers_));
    const double add = std::log(std::max(double(prob), 1e-30)) + step * neg_log_decay_;
    double& s = log_score_[i];
    const double hi = std::max(s, add), lo = std::min(s, add);
    s = std::isinf(lo) ? hi : hi + std::log1p(std::exp(lo - hi));
    last_[i] = double(now);
  }
  void inserted(size_t i, uint64_t now) override { last_[i] = std::max(last_[i], double(now)); }
  Rank rank(size_t i) const override { return {log_score_[i], last_[i]}; }
  int n_layers_;
  double neg_log_decay_;
  std::vector<double> log_score_, last_;
};

// Evicts the expert whose next use lies farthest in the future (never used again: first).
class BeladyPolicy final : public RankedPolicy {
 public:
  BeladyPolicy(const PolicyParams& p, std::shared_ptr<const FutureTrace> f)
      : RankedPolicy(p), future_(std::move(f)), next_(size(), 0) {
    if (!future_) fail(ErrorKind::kInvalidArgument, "belady policy: no future trace given");
    if (future_->n_layers() != p.n_layers || future_->n_experts() != p.n_experts)
      fail(ErrorKind::kInvalidArgument,
           "belady policy: the future trace has {} layers x {} experts, the cache {} x {}",
           future_->n_layers(), future_->n_experts(), p.n_layers, p.n_experts);
  }
  PolicyKind kind() const override { return PolicyKind::kBelady; }

 private:
  void update(size_t i, uint64_t now) {
    const auto n = future_->next_use(id_of(i), now);
    next_[i] = n ? -double(*n) : -std::numeric_limits<double>::infinity();
  }
  void routed(size_t i, float, uint64_t now) override { update(i, now); }
  void inserted(size_t i, uint64_t now) override { update(i, now); }
  Rank rank(size_t i) const override { return {next_[i], 0}; }
  std::shared_ptr<const FutureTrace> future_;
  std::vector<double> next_;  // minus the next use tick
};

}  // namespace

const char* policy_name(PolicyKind k) {
  switch (k) {
    case PolicyKind::kLru:
      return "lru";
    case PolicyKind::kLfu:
      return "lfu";
    case PolicyKind::kRouterFreq:
      return "router_freq";
    case PolicyKind::kBelady:
      return "belady";
  }
  return "?";
}

std::optional<PolicyKind> parse_policy_kind(std::string_view name) {
  for (PolicyKind k :
       {PolicyKind::kLru, PolicyKind::kLfu, PolicyKind::kRouterFreq, PolicyKind::kBelady})
    if (name == policy_name(k)) return k;
  return std::nullopt;
}

FutureTrace::FutureTrace(int n_layers, int n_experts)
    : n_layers_(n_layers),
      n_experts_(n_experts),
      uses_(size_t(std::max(0, n_layers)) * size_t(std::max(0, n_experts))) {}

void FutureTrace::add(ExpertId id, uint64_t tick) {
  auto& u = uses_.at(id.index(n_experts_));
  if (!u.empty() && u.back() > tick)
    fail(ErrorKind::kInvalidArgument, "future trace: tick {} of {} added after tick {}", tick,
         to_string(id), u.back());
  if (u.empty() || u.back() != tick) u.push_back(tick);
}

std::optional<uint64_t> FutureTrace::next_use(ExpertId id, uint64_t now) const {
  const auto& u = uses_.at(id.index(n_experts_));
  auto it = std::upper_bound(u.begin(), u.end(), now);
  if (it == u.end()) return std::nullopt;
  return *it;
}

std::unique_ptr<EvictionPolicy> make_policy(PolicyKind kind, const PolicyParams& params) {
  switch (kind) {
    case PolicyKind::kLru:
      return std::make_unique<LruPolicy>(params);
    case PolicyKind::kLfu:
      return std::make_unique<LfuPolicy>(params);
    case PolicyKind::kRouterFreq:
      return std::make_unique<RouterFreqPolicy>(params);
    case PolicyKind::kBelady:
      fail(ErrorKind::kInvalidArgument,
           "cache policy 'belady' needs the future: it is an offline oracle for the trace "
           "simulator (coldstream tune), not a runtime policy");
  }
  fail(ErrorKind::kInternal, "unknown cache policy");
}

std::unique_ptr<EvictionPolicy> make_belady_policy(const PolicyParams& params,
                                                   std::shared_ptr<const FutureTrace> future) {
  return std::make_unique<BeladyPolicy>(params, std::move(future));
}

}  // namespace cs
