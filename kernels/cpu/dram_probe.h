// DRAM read bandwidth as the CPU expert threads see it: every thread of a pool streams its share
// of a buffer far larger than the caches, XOR-folding the words so the loads are kept. The
// buffer is filled once, in parallel on the same pool (first touch places each page near the
// thread that fills it). The kernel benchmark (cs_bench_cpu_moe) and bench-offload's channel
// measurement both use it, so the CPU kernels' share of DRAM and the hybrid's bounds are taken
// against the same number.
//
// Thread-safety: one thread at a time; the pool must not run other work meanwhile.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "kernels/cpu/thread_pool.h"

namespace cs {

// Fills [p, p + n) with pseudo-random bytes (xorshift from `seed`, per 4 MiB chunk), in parallel
// on `pool`: first touch places each page near the thread that fills it.
void fill_random(ThreadPool& pool, uint8_t* p, size_t n, uint64_t seed);

class DramProbe {
 public:
  // Allocates and fills `bytes` (rounded to whole 4 KiB pages). Throws cs::Error (kOutOfMemory).
  DramProbe(ThreadPool& pool, size_t bytes);
  // Bytes read per second: the median of `reps` timed passes over the whole buffer.
  double rate(int reps);
  size_t bytes() const { return bytes_; }

 private:
  struct Free {
    void operator()(void* p) const;
  };
  ThreadPool& pool_;
  size_t bytes_;
  std::unique_ptr<uint64_t, Free> buf_;
};

}  // namespace cs
