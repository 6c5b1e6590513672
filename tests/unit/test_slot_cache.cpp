// Slot bookkeeping: what may be evicted (loading, pinned, hot, unused prefetches), per-layer
// partitions, failed copies.
#include <doctest/doctest.h>

#include "cache/slot_cache.h"
#include "common/error.h"

using namespace cs;

namespace {

std::unique_ptr<SlotCache> lru_cache(int slots, SlotAllocation a = SlotAllocation::kGlobal,
                                     std::vector<int> layers = {0, 1}) {
  CacheGeometry g;
  g.n_slots = slots;
  g.n_layers = 2;
  g.n_experts = 8;
  g.allocation = a;
  g.layers = std::move(layers);
  return make_slot_cache(g, PolicyKind::kLru, 0.9);
}

}  // namespace

TEST_CASE("slot cache: free slots first, then the policy's victim; loading slots are never taken") {
  auto c = lru_cache(2);
  const auto a = c->allocate({0, 1}, Purpose::kDemand, 0);
  REQUIRE(a);
  CHECK(a->slot == 0);
  CHECK_FALSE(a->evicted.valid());
  CHECK(c->loading({0, 1}));
  CHECK(c->allocate({0, 2}, Purpose::kDemand, 1)->slot == 1);
  // Both loading: nothing to evict.
  CHECK_FALSE(c->allocate({0, 3}, Purpose::kDemand, 2));
  c->loaded({0, 1});
  c->loaded({0, 2});
  CHECK(c->usable(0) == 2);
  const auto b = c->allocate({0, 3}, Purpose::kDemand, 3);
  REQUIRE(b);
  CHECK(b->evicted == ExpertId{0, 1});
  CHECK(c->find({0, 1}) == -1);
  CHECK(c->evictions() == 1);
}

TEST_CASE("slot cache: pinned and hot experts stay; unused prefetches resist prefetches only") {
  auto c = lru_cache(3);
  for (int e : {1, 2, 3}) {
    c->allocate({0, e}, e == 3 ? Purpose::kPrefetch : Purpose::kDemand, uint64_t(e));
    c->loaded({0, e});
  }
  c->pin({0, 1});
  // Victim for a prefetch: 1 is pinned, 3 is an unused prefetch, so 2.
  auto a = c->allocate({0, 4}, Purpose::kPrefetch, 10);
  REQUIRE(a);
  CHECK(a->evicted == ExpertId{0, 2});
  c->loaded({0, 4});
  // Now 1 pinned, 3 and 4 unused prefetches: another prefetch finds nothing, a demand takes 3.
  CHECK_FALSE(c->allocate({0, 5}, Purpose::kPrefetch, 11));
  a = c->allocate({0, 5}, Purpose::kDemand, 12);
  REQUIRE(a);
  CHECK(a->evicted == ExpertId{0, 3});
  c->loaded({0, 5});
  // Using a prefetch, or closing its layer's window, removes the protection.
  c->close_prefetch_window(0);
  c->unpin_all();
  CHECK(c->allocate({0, 6}, Purpose::kPrefetch, 13)->evicted == ExpertId{0, 1});
  c->loaded({0, 6});
  // Hot experts are never evicted, whatever their rank.
  auto h = lru_cache(2);
  h->allocate({0, 1}, Purpose::kHot, 0);
  h->loaded({0, 1});
  h->allocate({0, 2}, Purpose::kDemand, 1);
  h->loaded({0, 2});
  CHECK(h->usable(0) == 1);
  CHECK(h->allocate({0, 3}, Purpose::kDemand, 2)->evicted == ExpertId{0, 2});
}

TEST_CASE("slot cache: per-layer partitions compete only within their layer") {
  auto c = lru_cache(5, SlotAllocation::kPerLayer);
  CHECK(c->n_partitions() == 2);
  CHECK(c->partition_size(0) == 3);  // the remainder goes to the first layer
  CHECK(c->partition_size(1) == 2);
  for (int e = 0; e < 3; ++e) {
    c->allocate({0, e}, Purpose::kDemand, uint64_t(e));
    c->loaded({0, e});
  }
  c->allocate({1, 0}, Purpose::kDemand, 5);
  c->loaded({1, 0});
  // Layer 0 is full: its newcomer evicts within layer 0 although layer 1 has a free slot.
  const auto a = c->allocate({0, 7}, Purpose::kDemand, 6);
  REQUIRE(a);
  CHECK(a->evicted == ExpertId{0, 0});
  CHECK(c->slot(a->slot).partition == 0);
  CHECK(c->allocate({1, 1}, Purpose::kDemand, 7)->slot == 4);
  CHECK_THROWS_AS(lru_cache(1, SlotAllocation::kPerLayer), Error);  // a layer without a slot
}

TEST_CASE("slot cache: a failed copy frees its slot without counting an eviction") {
  auto c = lru_cache(1);
  c->allocate({0, 1}, Purpose::kPrefetch, 0);
  c->pin({0, 1});
  c->abort({0, 1});
  CHECK(c->find({0, 1}) == -1);
  CHECK(c->evictions() == 0);
  CHECK(c->usable(0) == 1);
  CHECK(c->allocate({0, 2}, Purpose::kDemand, 1)->slot == 0);
  CHECK_THROWS_AS(c->allocate({0, 2}, Purpose::kDemand, 2), Error);  // already present
}
