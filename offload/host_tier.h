// The host-RAM tier: expert blobs in the pinned arena, and the NVMe tier behind it.
//
// Two modes, chosen by the host budget:
// - full: every expert has a fixed host slot, filled once at start-up (from the packed file
//   through the NVMe reader, or packed from in-memory weights). No NVMe reads afterwards.
// - cached: the budget holds fewer slots than experts; a SlotCache (host policy) decides which
//   experts stay, and the rest are read from the packed file on demand or by prefetch.
//
// Slots never straddle a 1 GiB boundary of the arena, so each lies inside one io_uring fixed
// buffer.
//
// Thread-safety: one thread (the executor); the reader and arena have their own threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "cache/slot_cache.h"
#include "offload/expert_locator.h"
#include "offload/host_arena.h"
#include "offload/nvme_reader.h"

namespace cs {

struct HostTierOptions {
  uint64_t budget = 0;  // bytes of host RAM for expert blobs; 0: every expert
  ArenaOptions arena;   // bytes is set by the tier
  NvmeOptions io;
  PolicyKind policy = PolicyKind::kLru;  // cached mode
  double decay = 0.9;
};

class HostTier {
 public:
  // Throws cs::Error: kOutOfMemory when the budget holds fewer than `min_slots` blobs, kBadFile
  // for an invalid locator, kUnsupported for a cached tier without a packed file.
  HostTier(const ExpertLocator& locator, HostTierOptions options, int min_slots);

  bool full() const { return !cache_; }
  int n_slots() const { return n_slots_; }
  uint64_t slot_bytes() const { return slot_bytes_; }
  uint64_t bytes() const { return arena_->size(); }
  uint8_t* slot_ptr(int slot) const;
  // The host copy of `id`, or null when it is not in RAM (cached mode). In cached mode it may
  // still be arriving: the caller checks the cache state.
  uint8_t* blob(ExpertId id) const;
  int fixed_slot(ExpertId id) const;  // full mode

  SlotCache* cache() { return cache_.get(); }
  NvmeReader* reader() { return reader_.get(); }
  HostArena& arena() { return *arena_; }
  const ExpertLocator& locator() const { return locator_; }

  // Full mode: fills every slot from the packed file (all reads queued at once, verified),
  // calling progress(done, total) now and then. Throws the first read failure.
  void load_all_from_file(const std::function<void(int, int)>& progress = {});
  // Full mode: fills every slot with fill(id, dst).
  void load_all(const std::function<void(ExpertId, void*)>& fill);

 private:
  const ExpertLocator& locator_;
  HostTierOptions opt_;
  uint64_t slot_bytes_ = 0;
  int n_slots_ = 0;
  int slots_per_region_ = 0;
  std::vector<int> fixed_;  // full mode: [layer * E + expert] -> slot, -1 absent
  std::unique_ptr<HostArena> arena_;
  std::unique_ptr<SlotCache> cache_;
  std::unique_ptr<NvmeReader> reader_;
};

}  // namespace cs
