// The host tier's memory: one anonymous mapping holding the host-RAM copies of experts, shared
// by the NVMe reader (it reads into it) and the GPU copies (they read from it).
//
// Pinning (cudaHostRegister, ~1-2 GB/s) runs in chunks from a background thread started by the
// constructor, so start-up does not wait for 100 GB to be page-locked; progress is reported
// through a callback. A chunk that cannot be pinned stops pinning: the rest stays pageable
// (copies still work, slower, and the owner warns with the measured cost). Without a pinner
// (no CUDA) the arena is plain memory. The mapping is bound to a NUMA node before it is
// touched when one is given.
//
// Thread-safety: data() is immutable; status() and wait_pinned() may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "offload/pinner.h"

namespace cs {

struct PinStatus {
  uint64_t pinned = 0, total = 0;  // bytes
  bool done = false;               // pinning finished (fully or not)
  bool failed = false;             // a chunk was refused: [pinned, total) stays pageable
  std::string error;
  double seconds = 0;  // time spent pinning so far
};

struct ArenaOptions {
  uint64_t bytes = 0;
  Pinner* pinner = nullptr;           // not owned; null: no pinning
  uint64_t pin_chunk = 256ull << 20;  // bytes pinned per call (rounded down to whole blobs)
  // Blob geometry: blobs of `blob` bytes packed from the start of each `region` (no blob
  // straddles a region boundary). Pinned ranges then never cut a blob: a copy from a blob reads
  // one registered range (cudaMemcpyAsync fails on a source that spans two). 0: no blobs.
  uint64_t region = 0, blob = 0;
  int numa_node = -1;      // bind to this node; -1: leave to the OS
  bool background = true;  // pin from a thread (false: in the constructor)
  bool hugepages = true;   // madvise(MADV_HUGEPAGE)
  std::function<void(const PinStatus&)> on_progress;  // called from the pinning thread
};

// The ranges pinned, in order: [offset, offset + bytes) each. With a blob geometry, every range
// lies in one region and starts and ends on blob boundaries within it (or the region's end), so
// each blob lies in exactly one range.
struct PinRange {
  uint64_t offset = 0, bytes = 0;
};
std::vector<PinRange> pin_ranges(uint64_t bytes, uint64_t chunk, uint64_t region, uint64_t blob);

class HostArena {
 public:
  // Throws cs::Error (kOutOfMemory) naming the size when the mapping fails.
  explicit HostArena(ArenaOptions options);
  ~HostArena();
  HostArena(const HostArena&) = delete;
  HostArena& operator=(const HostArena&) = delete;

  uint8_t* data() const { return data_; }
  uint64_t size() const { return options_.bytes; }
  PinStatus status() const;
  PinStatus wait_pinned() const;  // blocks until pinning is done
  // True when [ptr, ptr + bytes) lies in the pinned part.
  bool pinned(const void* ptr, size_t bytes) const;
  std::string numa_note() const { return numa_note_; }

 private:
  void pin_all();

  ArenaOptions options_;
  uint8_t* data_ = nullptr;
  std::string numa_note_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  PinStatus status_;                  // GUARDED_BY(mu_)
  std::vector<void*> pinned_chunks_;  // GUARDED_BY(mu_)
  std::atomic<uint64_t> pinned_bytes_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace cs
