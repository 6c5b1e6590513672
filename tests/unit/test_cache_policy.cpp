// Eviction policies on fixed traces: a given trace gives the given hits and evictions.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "cache/slot_cache.h"
#include "common/error.h"

using namespace cs;

namespace {

// Runs a trace of single-expert accesses of layer 0 through a cache of `slots` slots: a hit
// touches, a miss allocates (evicting) and lands at once. Returns "h" / "m" per access and the
// evicted experts in order.
struct Result {
  std::string pattern;
  std::vector<int> evicted;
};

Result run(PolicyKind kind, int slots, const std::vector<int>& trace,
           const std::vector<float>& probs = {}, std::shared_ptr<const FutureTrace> future = {}) {
  CacheGeometry g;
  g.n_slots = slots;
  g.n_layers = 1;
  g.n_experts = 16;
  g.layers = {0};
  PolicyParams p;
  p.n_layers = 1;
  p.n_experts = 16;
  p.decay = 0.5;
  SlotCache cache(
      g, kind == PolicyKind::kBelady ? make_belady_policy(p, future) : make_policy(kind, p));
  Result r;
  for (size_t t = 0; t < trace.size(); ++t) {
    const ExpertId id{0, trace[t]};
    cache.route(id, probs.empty() ? 1.0f : probs[t], t);
    if (cache.resident(id)) {
      r.pattern += 'h';
      continue;
    }
    r.pattern += 'm';
    const auto a = cache.allocate(id, Purpose::kDemand, t);
    REQUIRE(a);
    if (a->evicted.valid()) r.evicted.push_back(a->evicted.expert);
    cache.loaded(id);
  }
  return r;
}

}  // namespace

TEST_CASE("LRU evicts the least recently routed expert") {
  const Result r = run(PolicyKind::kLru, 3, {1, 2, 3, 1, 4, 2, 5, 1, 3});
  CHECK(r.pattern == "mmmhmmmmm");
  CHECK(r.evicted == std::vector<int>{2, 3, 1, 4, 2});
}

TEST_CASE("LFU evicts the least often routed expert, ties to the least recent") {
  // Counts include routes while not resident: 1 is routed 3 times and stays.
  const Result r = run(PolicyKind::kLfu, 2, {1, 1, 2, 3, 1, 2, 3, 3});
  CHECK(r.pattern == "mhmmhmmh");
  CHECK(r.evicted == std::vector<int>{2, 3, 2});
}

TEST_CASE("router frequency keeps experts with large decayed probability mass") {
  // Expert 1 is routed with probability 0.9, experts 2 and 3 with 0.1; decay 0.5 per step
  // (one layer: a step per tick). Scores as sum p * 2^t: 1 keeps 0.9 then 8.1, so 2 and 3 take
  // turns in the other slot, while LRU on the same cyclic trace misses every time.
  const std::vector<int> trace{1, 2, 3, 1, 2, 3};
  const std::vector<float> probs{0.9f, 0.1f, 0.1f, 0.9f, 0.1f, 0.1f};
  const Result rf = run(PolicyKind::kRouterFreq, 2, trace, probs);
  CHECK(rf.pattern == "mmmhmm");
  CHECK(rf.evicted == std::vector<int>{2, 3, 2});
  const Result lru = run(PolicyKind::kLru, 2, trace, probs);
  CHECK(lru.pattern == "mmmmmm");
  CHECK(lru.evicted == std::vector<int>{1, 2, 3, 1});
}

TEST_CASE("Belady evicts the expert used farthest in the future") {
  const std::vector<int> trace{1, 2, 3, 1, 2, 4, 1, 2, 3};
  auto future = std::make_shared<FutureTrace>(1, 16);
  for (size_t t = 0; t < trace.size(); ++t) future->add({0, trace[t]}, t);
  const Result opt = run(PolicyKind::kBelady, 2, trace, {}, future);
  const Result lru = run(PolicyKind::kLru, 2, trace);
  auto hits = [](const std::string& p) { return std::count(p.begin(), p.end(), 'h'); };
  CHECK(opt.pattern == "mmmhmmhmm");
  CHECK(opt.evicted == std::vector<int>{2, 3, 2, 1, 2});  // ties (never used again): lower id
  CHECK(hits(opt.pattern) >= hits(lru.pattern));
  CHECK_THROWS_AS(make_policy(PolicyKind::kBelady, PolicyParams{1, 16, 1, 0.9}), Error);
}
