// Plans are plain data: these tests read them field by field. Every number here follows from the
// rules in cache/planner.h and cache/slot_cache.h (LRU, ties to the lower expert id).
#include <doctest/doctest.h>

#include <random>

#include "cache/planner.h"
#include "common/error.h"

using namespace cs;

namespace {

struct Fixture {
  std::unique_ptr<SlotCache> gpu, host;
  std::unique_ptr<Planner> planner;
  std::vector<int32_t> ids;
  std::vector<float> w;

  Fixture(int gpu_slots, int host_slots = 0, PlannerOptions o = {}, int layers = 2) {
    CacheGeometry g;
    g.n_slots = gpu_slots;
    g.n_layers = layers;
    g.n_experts = 8;
    for (int l = 0; l < layers; ++l) g.layers.push_back(l);
    gpu = make_slot_cache(g, PolicyKind::kLru, 0.9);
    if (host_slots) {
      g.n_slots = host_slots;
      host = make_slot_cache(g, PolicyKind::kLru, 0.9);
    }
    if (o.k == 0) o.k = 2;
    planner = std::make_unique<Planner>(*gpu, host.get(), o);
  }
  // tokens: each token's k experts.
  LayerPlan plan(int layer, const std::vector<std::vector<int>>& tokens, const Prediction& p = {}) {
    ids.clear();
    w.clear();
    for (const auto& t : tokens)
      for (int e : t) {
        ids.push_back(e);
        w.push_back(0.5f);
      }
    return planner->plan({layer, int(tokens.size()), 2, ids.data(), w.data()}, p);
  }
};

Prediction predict(int layer, std::vector<int> experts) {
  Prediction p;
  p.layers = {layer};
  for (int e : experts) p.experts.push_back({{layer, e}, 0.9f});
  return p;
}

}  // namespace

TEST_CASE("planner: demand copies, prefetches from predictions, waits, then hits") {
  PlannerOptions o;
  o.prefetch_share = 1.0;
  Fixture f(4, 0, o);
  // Step 0, layer 0: both experts are misses; layer 1 is predicted to use 3 and 4.
  LayerPlan p = f.plan(0, {{1, 2}}, predict(1, {3, 4}));
  REQUIRE(p.passes.size() == 1);
  CHECK(p.passes[0].hits.empty());
  REQUIRE(p.passes[0].demand.size() == 2);
  CHECK(p.passes[0].demand[0].id == ExpertId{0, 1});
  CHECK(p.passes[0].demand[0].slot == 0);
  CHECK(p.passes[0].demand[1].slot == 1);
  REQUIRE(p.prefetches.size() == 2);
  CHECK(p.prefetches[0].id == ExpertId{1, 3});
  CHECK(p.prefetches[0].slot == 2);
  CHECK(p.prefetches[1].slot == 3);
  CHECK(p.gpu_evictions().empty());
  // Layer 1 uses 3 (its prefetch is still in flight: a wait) and 5 (a miss, evicting the LRU
  // expert of layer 0: 1 and 2 tie, so 1).
  p = f.plan(1, {{3, 5}});
  REQUIRE(p.passes[0].waits.size() == 1);
  CHECK(p.passes[0].waits[0].id == ExpertId{1, 3});
  REQUIRE(p.passes[0].demand.size() == 1);
  CHECK(p.passes[0].demand[0].slot == 0);
  CHECK(p.passes[0].demand[0].evicted == ExpertId{0, 1});
  // The executor waits for 3 before the pass computes: the plan records it arrived already.
  CHECK(f.gpu->resident({1, 3}));
  CHECK(f.gpu->loading({1, 4}));
  f.gpu->loaded({1, 4});
  // Step 1, layer 0: 2 is a hit; 6 evicts 4 (prefetched but never used, last touched at tick 0).
  f.planner->begin_step(1);
  p = f.plan(0, {{2, 6}});
  REQUIRE(p.passes[0].hits.size() == 1);
  CHECK(p.passes[0].hits[0].id == ExpertId{0, 2});
  CHECK(p.passes[0].hits[0].slot == 1);
  REQUIRE(p.passes[0].demand.size() == 1);
  CHECK(p.passes[0].demand[0].evicted == ExpertId{1, 4});
  CHECK(p.tick == 2);  // step 1 x 2 layers + layer 0
}

TEST_CASE("planner: prefetch_copies caps the prefetch copies in flight, keeping the likeliest") {
  PlannerOptions o;
  o.prefetch_share = 1.0;
  o.prefetch_copies = 2;
  Fixture f(8, 0, o);
  // Predictions come best first: 3, 4, 5, 6 for layer 1; only 3 and 4 are copied.
  LayerPlan p = f.plan(0, {{1, 2}}, predict(1, {3, 4, 5, 6}));
  REQUIRE(p.prefetches.size() == 2);
  CHECK(p.prefetches[0].id == ExpertId{1, 3});
  CHECK(p.prefetches[1].id == ExpertId{1, 4});
  // Both still loading at the next layer (which does not use them): nothing more is prefetched;
  // once one has landed, one more is.
  p = f.plan(1, {{7, 0}}, predict(0, {5, 6}));
  CHECK(p.prefetches.empty());
  f.gpu->loaded({1, 3});
  f.planner->begin_step(1);
  p = f.plan(0, {{1, 2}}, predict(1, {5, 6}));
  REQUIRE(p.prefetches.size() == 1);
  CHECK(p.prefetches[0].id == ExpertId{1, 5});
  // Without the cap every prediction that fits is copied.
  Fixture g(8, 0, {.prefetch_share = 1.0});
  CHECK(g.plan(0, {{1, 2}}, predict(1, {3, 4, 5, 6})).prefetches.size() == 4);
}

TEST_CASE("planner: a layer whose experts exceed the slots runs in passes over token ranges") {
  Fixture f(3, 0, {}, 1);
  const LayerPlan p = f.plan(0, {{0, 1}, {2, 3}, {0, 2}, {4, 5}});
  REQUIRE(p.passes.size() == 3);
  CHECK(p.passes[0].t_begin == 0);
  CHECK(p.passes[0].t_end == 1);
  CHECK(p.passes[1].t_begin == 1);
  CHECK(p.passes[1].t_end == 3);
  CHECK(p.passes[2].t_end == 4);
  // Pass 2 keeps 0 (pinned first) and takes the free slot and 1's slot.
  REQUIRE(p.passes[1].hits.size() == 1);
  CHECK(p.passes[1].hits[0].id == ExpertId{0, 0});
  REQUIRE(p.passes[1].demand.size() == 2);
  CHECK(p.passes[1].demand[0].id == ExpertId{0, 2});
  CHECK(p.passes[1].demand[0].slot == 2);
  CHECK(p.passes[1].demand[1].evicted == ExpertId{0, 1});
  CHECK(p.passes[2].demand[0].evicted == ExpertId{0, 0});
  CHECK(p.passes[2].demand[1].evicted == ExpertId{0, 2});
  CHECK(p.routed.size() == 6);
  CHECK(p.routed[0].tokens == 2);  // expert 0: tokens 0 and 2
}

TEST_CASE("planner: prefetches a pass waits for are slots later passes may reuse") {
  // 5 slots, experts 0 and 1 in flight. Token 0 waits for both; tokens 1, 2 and 3 need 2 .. 7.
  // Pass 0 has 3 usable slots (tokens 0 and 1). Were the waited-for slots still "loading"
  // afterwards, 3 slots would stay usable and tokens 2 and 3 would need a pass each; as arrived,
  // all 5 are usable and one pass takes both.
  Fixture f(5, 0, {}, 1);
  f.gpu->allocate({0, 0}, Purpose::kPrefetch, 0);
  f.gpu->allocate({0, 1}, Purpose::kPrefetch, 0);
  const LayerPlan p = f.plan(0, {{0, 1}, {2, 3}, {4, 5}, {6, 7}});
  REQUIRE(p.passes.size() == 2);
  CHECK(p.passes[0].waits.size() == 2);
  CHECK(p.passes[0].demand.size() == 2);
  CHECK(p.passes[0].t_end == 2);
  CHECK(p.passes[1].t_begin == 2);
  CHECK(p.passes[1].t_end == 4);
  REQUIRE(p.passes[1].demand.size() == 4);
  CHECK(f.gpu->loading_count(0) == 0);
  int reused = 0;  // slots of waited-for experts taken by pass 1
  for (const PlanCopy& c : p.passes[1].demand)
    reused += c.evicted == ExpertId{0, 0} || c.evicted == ExpertId{0, 1};
  CHECK(reused >= 1);
}

TEST_CASE("planner: in-flight prefetches that block a layer make it drain first") {
  Fixture f(3, 0, {}, 1);
  f.gpu->allocate({0, 5}, Purpose::kPrefetch, 0);
  f.gpu->allocate({0, 6}, Purpose::kPrefetch, 0);
  LayerPlan p = f.plan(0, {{1, 2}});
  CHECK(p.drain);
  CHECK(p.passes.empty());
  f.gpu->loaded({0, 5});
  f.gpu->loaded({0, 6});
  p = f.plan(0, {{1, 2}});
  CHECK_FALSE(p.drain);
  REQUIRE(p.passes[0].demand.size() == 2);
  CHECK(p.passes[0].demand[1].evicted == ExpertId{0, 5});
  // A hot set that leaves fewer than k slots is refused; so is a partition smaller than k.
  Fixture h(3, 0, {}, 1);
  std::vector<ExpertId> skipped;
  const auto hot = h.planner->plan_hot_set({{{0, 1}, 1.0}, {{0, 2}, 0.5}}, &skipped);
  CHECK(hot.size() == 1);
  CHECK(skipped == std::vector<ExpertId>{{0, 2}});
  CHECK_THROWS_AS(Fixture(1, 0, {}, 1), Error);
}

TEST_CASE("planner: every miss is a decision between streaming and the CPU") {
  struct FewTokensOnCpu final : MissPathChooser {
    MissPath choose(const MissInfo& m) override {
      return m.tokens >= 2 ? MissPath::kStream : MissPath::kCpu;
    }
  } chooser;
  PlannerOptions o;
  o.chooser = &chooser;
  Fixture f(4, 0, o, 1);
  LayerPlan p = f.plan(0, {{0, 1}, {0, 2}});
  REQUIRE(p.passes[0].demand.size() == 1);
  CHECK(p.passes[0].demand[0].id == ExpertId{0, 0});
  CHECK(p.passes[0].demand[0].tokens == 2);
  REQUIRE(p.passes[0].cpu.size() == 2);
  CHECK(p.passes[0].cpu[0].id == ExpertId{0, 1});
  CHECK(f.gpu->find({0, 1}) == -1);  // computed on the CPU: no GPU slot taken
  PlannerOptions all_cpu;
  all_cpu.miss_path = MissPath::kCpu;
  Fixture g(2, 0, all_cpu, 1);
  p = g.plan(0, {{3, 4}});
  CHECK(p.passes[0].demand.empty());
  CHECK(p.passes[0].cpu.size() == 2);
}

TEST_CASE("planner: misses outside host RAM are read from NVMe into host slots first") {
  Fixture f(2, 3, {}, 1);
  LayerPlan p = f.plan(0, {{0, 1}});
  REQUIRE(p.passes[0].demand.size() == 2);
  CHECK(p.passes[0].demand[0].host.needed());
  CHECK(p.passes[0].demand[0].host.host_slot == 0);
  CHECK(p.passes[0].demand[1].host.host_slot == 1);
  CHECK(f.host->slot(0).pins == 1);  // the copy reads it: pinned until the next pass is planned
  p = f.plan(0, {{2, 3}});
  CHECK(f.host->slot(1).pins == 0);
  CHECK(p.passes[0].demand[0].host.host_slot == 2);
  CHECK(p.passes[0].demand[1].host.evicted == ExpertId{0, 0});
  CHECK(p.host_evictions() == std::vector<ExpertId>{{0, 0}});
  p = f.plan(0, {{1, 3}});  // 3 is on the GPU; 1 is still in host RAM: no read
  CHECK(p.passes[0].hits.size() == 1);
  REQUIRE(p.passes[0].demand.size() == 1);
  CHECK(p.passes[0].demand[0].id == ExpertId{0, 1});
  CHECK_FALSE(p.passes[0].demand[0].host.needed());
  CHECK(p.passes[0].demand[0].host.host_slot == 1);
}

TEST_CASE("planner: the same trace gives the same plans") {
  auto run = [] {
    PlannerOptions o;
    o.k = 2;
    Fixture f(5, 6, o, 2);
    std::mt19937 rng(7);
    std::string log;
    for (int step = 0; step < 20; ++step) {
      f.planner->begin_step(uint64_t(step));
      for (int layer = 0; layer < 2; ++layer) {
        const int a = int(rng() % 8), b = (a + 1 + int(rng() % 7)) % 8;
        const LayerPlan p = f.plan(layer, {{a, b}}, layer == 0 ? predict(1, {a, b}) : Prediction{});
        log += p.describe();
        for (const PlanCopy& c : p.prefetches) {
          if (c.host.needed()) f.host->loaded(c.id);
          if (c.slot >= 0) {
            f.gpu->loaded(c.id);
            f.host->unpin(c.id);
          }
        }
      }
    }
    return log;
  };
  const std::string a = run();
  CHECK(a == run());
  CHECK(a.find("prefetch") != std::string::npos);
  CHECK(a.find("evicting") != std::string::npos);
}
