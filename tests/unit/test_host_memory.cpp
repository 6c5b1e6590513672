// The host arena (pinning in chunks, in the background, failing gracefully), the host-only copy
// engine, GPU memory planning and the budget-enforcing backend.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "offload/budgeted_backend.h"
#include "offload/copy_engine.h"
#include "offload/host_arena.h"
#include "offload/vram_plan.h"

using namespace cs;

namespace {

// Pins the first `allow` chunks, then refuses (like cudaHostRegister past the memlock limit).
class FakePinner final : public Pinner {
 public:
  explicit FakePinner(int allow) : allow_(allow) {}
  const char* name() const override { return "fake"; }
  bool pin(void*, size_t, std::string* error) override {
    if (pinned_ >= allow_) {
      *error = "out of locked memory";
      return false;
    }
    ++pinned_;
    return true;
  }
  void unpin(void*) override { ++unpinned_; }
  int pinned_ = 0, unpinned_ = 0;

 private:
  int allow_;
};

}  // namespace

TEST_CASE("host arena: pins in chunks in the background and reports progress") {
  FakePinner pinner(100);
  std::atomic<int> calls{0};
  {
    ArenaOptions o;
    o.bytes = 10ull << 20;
    o.pinner = &pinner;
    o.pin_chunk = 1ull << 20;
    o.on_progress = [&](const PinStatus&) { ++calls; };
    HostArena a(o);
    std::memset(a.data(), 1, a.size());  // usable while pinning runs
    const PinStatus s = a.wait_pinned();
    CHECK(s.done);
    CHECK_FALSE(s.failed);
    CHECK(s.pinned == 10ull << 20);
    CHECK(a.pinned(a.data(), a.size()));
    CHECK(calls.load() == 10);  // 9 in progress + the final one
  }
  CHECK(pinner.unpinned_ == 10);
}

TEST_CASE("host arena: a refused chunk leaves the rest pageable, never a crash") {
  FakePinner pinner(3);
  ArenaOptions o;
  o.bytes = 8ull << 20;
  o.pinner = &pinner;
  o.pin_chunk = 1ull << 20;
  o.background = false;
  HostArena a(o);
  const PinStatus s = a.status();
  CHECK(s.done);
  CHECK(s.failed);
  CHECK(s.pinned == 3ull << 20);
  CHECK(s.error == "out of locked memory");
  CHECK(a.pinned(a.data(), 3ull << 20));
  CHECK_FALSE(a.pinned(a.data() + (3ull << 20), 4096));
  a.data()[a.size() - 1] = 7;  // the pageable part works
  ArenaOptions plain;
  plain.bytes = 1 << 20;
  HostArena p(plain);  // no pinner: plain memory
  CHECK(p.status().done);
  CHECK_FALSE(p.status().failed);
}

TEST_CASE("host copy engine: ordered tickets, exact bytes, throttled to a rate") {
  for (bool async : {true, false}) {
    auto e = make_host_copy_engine({0, async});
    std::vector<uint8_t> src(1 << 16), dst(1 << 16, 0);
    for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 7);
    const uint64_t a = e->copy(dst.data(), src.data(), 1 << 15);
    const uint64_t b = e->copy(dst.data() + (1 << 15), src.data() + (1 << 15), 1 << 15);
    CHECK(b == a + 1);
    e->wait(b);
    CHECK(e->done(a));
    CHECK(dst == src);
    CHECK(e->bytes_copied() == src.size());
  }
  // 1 MB at 100 MB/s takes at least 10 ms (a lower bound; no upper bound in a unit test).
  auto slow = make_host_copy_engine({100e6, true});
  std::vector<uint8_t> src(1 << 20), dst(1 << 20);
  const auto t0 = std::chrono::steady_clock::now();
  slow->wait(slow->copy(dst.data(), src.data(), src.size()));
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::microseconds(9500));
  // Compute on the host is synchronous, so ordering compute after a copy waits for it.
  std::fill(dst.begin(), dst.end(), uint8_t(0));
  for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 13 + 1);
  const uint64_t t = slow->copy(dst.data(), src.data(), src.size());
  slow->order_compute(t);
  CHECK(slow->done(t));
  CHECK(dst == src);
}

TEST_CASE("VRAM plan: the budget's rest becomes slots; too small a budget names the items") {
  const VramPlan p = plan_vram(10ull << 30, {{"weights", 3ull << 30}, {"kv cache", 1ull << 30}},
                               100ull << 20, 8, 1000, "--vram-budget");
  CHECK(p.slots == 61);  // 6 GiB / 100 MiB
  CHECK(p.total() <= p.budget);
  CHECK(plan_vram(10ull << 30, {}, 100ull << 20, 8, 20, "x").slots == 20);  // every expert
  CHECK_THROWS_WITH_AS(plan_vram(4ull << 30, {{"weights", 3ull << 30}, {"kv cache", 1ull << 30}},
                                 100ull << 20, 8, 1000, "--vram-budget"),
                       doctest::Contains("raise --vram-budget"), Error);
}

TEST_CASE("budgeted backend: counts allocations and refuses one past the limit") {
  auto cpu = make_cpu_reference_backend();
  BudgetedBackend b(*cpu, 1 << 20);
  {
    Buffer x = b.alloc(600 << 10);
    CHECK(b.allocated() == 600u << 10);
    CHECK_THROWS_WITH_AS(b.alloc(600 << 10), doctest::Contains("budget exceeded"), Error);
    Buffer y = b.alloc(400 << 10);
    CHECK(b.peak() == 1000u << 10);
    float v[2] = {1, 2}, w[2] = {10, 20};
    b.upload(x.get(), v, sizeof v);
    b.add(x.as<float>(), w, 2);
    b.download(v, x.get(), sizeof v);
    CHECK(v[1] == 22);
  }
  CHECK(b.allocated() == 0);
}

TEST_CASE("budgeted backend: forwards the fused ops, so the wrapped backend may fuse them") {
  // A wrapper that only records: were route and qk_attention not forwarded, the outer backend's
  // defaults would call matmul + router and qk_norm_rope_store + attention on it instead.
  struct Recorder final : BudgetedBackend {
    using BudgetedBackend::BudgetedBackend;
    int routes = 0, qk_attentions = 0;
    void route(const float*, int, const MatView&, int, bool, float*, int32_t*, float*) override {
      ++routes;
    }
    void qk_attention(const AttentionArgs&, const QkPrologue&) override { ++qk_attentions; }
    // What the outer defaults would call instead: recorded, not run.
    int unfused = 0;
    void matmul(const float*, int, const MatView&, float*) override { ++unfused; }
    void router(const float*, int, int, int, bool, int32_t*, float*) override { ++unfused; }
    void qk_norm_rope_store(float*, float*, const float*, int, int, int, int, const MatView&,
                            const MatView&, float, int, const RopeArgs&, DType, void*,
                            void*) override {
      ++unfused;
    }
    void attention(const AttentionArgs&) override { ++unfused; }
  };
  auto cpu = make_cpu_reference_backend();
  Recorder rec(*cpu, 0);
  BudgetedBackend outer(rec, 0);
  outer.route(nullptr, 1, MatView{}, 1, false, nullptr, nullptr, nullptr);
  outer.qk_attention(AttentionArgs{}, QkPrologue{});
  CHECK(rec.routes == 1);
  CHECK(rec.qk_attentions == 1);
  CHECK(rec.unfused == 0);
}

TEST_CASE("host arena: pinned ranges never cut a blob (each copy reads one registered range)") {
  // Blobs of 10.6 MB packed from the start of each 1 GiB region (as the host tier lays them
  // out), pinned in 256 MiB chunks: a plain 256 MiB split would cut blobs at 256 MiB, 512 MiB...
  const uint64_t region = 1ull << 30, blob = 10620928, chunk = 256ull << 20;
  const uint64_t per_region = region / blob;  // 101
  for (const uint64_t n_blobs : {uint64_t(1), per_region - 1, per_region, 2 * per_region + 37}) {
    CAPTURE(n_blobs);
    const uint64_t bytes = (n_blobs / per_region) * region + (n_blobs % per_region) * blob;
    const std::vector<PinRange> r = pin_ranges(bytes, chunk, region, blob);
    // The ranges tile the arena in order.
    uint64_t off = 0;
    for (const PinRange& x : r) {
      CHECK(x.offset == off);
      CHECK(x.bytes > 0);
      CHECK(x.bytes <= chunk + blob);
      off += x.bytes;
    }
    CHECK(off == bytes);
    // Every blob lies inside exactly one range.
    for (uint64_t b = 0; b < n_blobs; ++b) {
      const uint64_t start = (b / per_region) * region + (b % per_region) * blob;
      int inside = 0;
      for (const PinRange& x : r) inside += start >= x.offset && start + blob <= x.offset + x.bytes;
      CHECK(inside == 1);
      if (inside != 1) break;
    }
  }
  // Without a blob geometry: plain chunks.
  const std::vector<PinRange> plain = pin_ranges(10ull << 20, 4ull << 20, 0, 0);
  REQUIRE(plain.size() == 3);
  CHECK(plain[2].bytes == 2ull << 20);
}
