// The hybrid scheduler's split (cache/hybrid_chooser.h) on synthetic costs: 1 MB experts, copies
// of 1 ms, CPU experts of 0.5 ms per token read at 2 GB/s, so every expected split below follows
// from "each miss to the channel that finishes sooner with it".
#include <doctest/doctest.h>

#include "cache/hybrid_chooser.h"
#include "cache/planner.h"

using namespace cs;

namespace {

CostParams params() {
  CostParams p;
  p.expert_bytes = 1000000;
  p.copy_rate = 1e9;  // 1 ms per copy
  p.copy_latency = 0;
  p.nvme_rate = 0.25e9;  // 4 ms per read
  p.nvme_latency = 0;
  p.dram_rate = 2e9;                  // 0.5 ms per expert at one token
  p.cpu = {{1, 0.5e-3}, {16, 8e-3}};  // then proportional: 0.5 ms per token
  p.gpu_rate = 1e12;                  // 1 us per expert: negligible
  p.cpu_fixed = 0;
  p.layer_fixed = 0;
  return p;
}

std::vector<MissInfo> misses(int n, int tokens, bool in_host = true) {
  std::vector<MissInfo> m;
  for (int e = 0; e < n; ++e) m.push_back({{0, e}, tokens, tokens, in_host});
  return m;
}

int count(const HybridSplit& s, MissPath p) {
  return int(std::count(s.paths.begin(), s.paths.end(), p));
}

}  // namespace

TEST_CASE("hybrid chooser: decode misses are split so that both channels finish together") {
  const HybridChooser c{CostModel(params())};
  // 6 one-token misses: copies take 1 ms each, CPU experts 0.5 ms: 2 copied, 4 on the CPU
  // (2 ms each channel) beats any other split.
  HybridSplit s = c.split(PassInfo{0, 1, 2, 0, 2}, misses(6, 1));
  CHECK(count(s, MissPath::kStream) == 2);
  CHECK(count(s, MissPath::kCpu) == 4);
  CHECK(s.predicted.copy_channel == doctest::Approx(2e-3 + 4e-6));
  CHECK(s.predicted.cpu_channel == doctest::Approx(2e-3));
  // A slower CPU (2 ms per expert) takes fewer: 3 misses -> 2 copied, 1 on the CPU.
  CostParams slow = params();
  slow.dram_rate = 0.5e9;
  slow.cpu = {};
  s = HybridChooser{CostModel(slow)}.split(PassInfo{0, 1, 0, 0, 0}, misses(3, 1));
  CHECK(count(s, MissPath::kStream) == 2);
  CHECK(count(s, MissPath::kCpu) == 1);
  // Prefetches in flight occupy the copy channel: with 3 under way, every miss goes to the CPU
  // while that is sooner.
  s = c.split(PassInfo{0, 1, 0, 3, 3}, misses(4, 1));
  CHECK(count(s, MissPath::kCpu) == 4);
}

TEST_CASE("hybrid chooser: prefill keeps experts with many tokens on the GPU") {
  const HybridChooser c{CostModel(params())};
  // 64 tokens: an expert seeing 16 tokens costs 8 ms on the CPU against a 1 ms copy; one seeing
  // a single token costs 0.5 ms there. The heavy ones are copied, the light ones computed.
  std::vector<MissInfo> m = misses(4, 16);
  for (int e = 4; e < 8; ++e) m.push_back({{0, e}, 1, 64, true});
  const HybridSplit s = c.split(PassInfo{0, 64, 0, 0, 0}, m);
  for (int i = 0; i < 4; ++i) CHECK(s.paths[size_t(i)] == MissPath::kStream);
  CHECK(count(s, MissPath::kCpu) >= 2);  // the 1-token experts while the CPU is sooner
  for (int i = 0; i < 8; ++i)
    if (s.paths[size_t(i)] == MissPath::kCpu) CHECK(m[size_t(i)].tokens == 1);
}

TEST_CASE("hybrid chooser: ties go to the copy; NVMe reads count on both channels") {
  CostParams p = params();
  p.dram_rate = 1e9;  // CPU expert 1 ms = copy 1 ms
  p.cpu = {};
  p.gpu = {{1, 0.0}};  // no GPU kernel time: an exact tie
  const HybridChooser c{CostModel(p)};
  HybridSplit s = c.split(PassInfo{0, 1, 0, 0, 0}, misses(1, 1));
  CHECK(s.paths[0] == MissPath::kStream);
  s = c.split(PassInfo{0, 1, 0, 0, 0}, misses(2, 1, false));  // 4 ms read + 1 ms either way
  CHECK(count(s, MissPath::kStream) == 1);
  CHECK(count(s, MissPath::kCpu) == 1);
  CHECK(s.predicted.total == doctest::Approx(5e-3));
}

TEST_CASE("hybrid chooser: measurements move the channel scales") {
  HybridChooser c{CostModel(params()), 0.5};
  // The CPU took twice the prediction: its scale moves half way to 2.
  c.observe(0, 0, false, 1e-3, 2e-3);
  CHECK(c.cpu_scale() == doctest::Approx(1.5));
  CHECK(c.copy_scale() == 1.0);
  // A copy time that is only an upper bound above the prediction changes nothing; below, it
  // lowers the scale.
  c.observe(1e-3, 3e-3, true, 0, 0);
  CHECK(c.copy_scale() == 1.0);
  c.observe(1e-3, 0.5e-3, true, 0, 0);
  CHECK(c.copy_scale() == doctest::Approx(0.75));
  // With the CPU 1.5x slower, 6 decode misses split 3/3 instead of 2/4.
  const HybridSplit s = c.split(PassInfo{0, 1, 0, 0, 0}, misses(6, 1));
  CHECK(count(s, MissPath::kCpu) == 3);
}

TEST_CASE("hybrid chooser: the planner asks for the whole pass, then each miss") {
  CacheGeometry g;
  g.n_slots = 8;
  g.n_layers = 1;
  g.n_experts = 16;
  g.layers = {0};
  auto gpu = make_slot_cache(g, PolicyKind::kLru, 0.9);
  HybridChooser chooser{CostModel(params())};
  PlannerOptions o;
  o.k = 6;
  o.chooser = &chooser;
  Planner planner(*gpu, nullptr, o);
  std::vector<int32_t> ids = {0, 1, 2, 3, 4, 5};
  std::vector<float> w(6, 1.0f / 6);
  const LayerPlan p = planner.plan(LayerRouting{0, 1, 6, ids.data(), w.data()}, Prediction{});
  REQUIRE(p.passes.size() == 1);
  CHECK(p.passes[0].demand.size() == 2);
  CHECK(p.passes[0].cpu.size() == 4);
  CHECK(pass_load(p.passes[0]).cpu_tokens == std::vector<int>{1, 1, 1, 1});
}
