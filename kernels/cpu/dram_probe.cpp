#include "kernels/cpu/dram_probe.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/stats.h"

namespace cs {
namespace {
volatile uint64_t g_sink = 0;
}  // namespace

void fill_random(ThreadPool& pool, uint8_t* p, size_t n, uint64_t seed) {
  const size_t chunk = size_t(1) << 22;
  pool.run(int64_t((n + chunk - 1) / chunk), [&](int64_t c, int) {
    uint64_t s = seed ^ (uint64_t(c) * 0x9E3779B97F4A7C15ull);
    const size_t end = std::min(n, size_t(c + 1) * chunk);
    for (size_t i = size_t(c) * chunk; i < end; i += 8) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      std::memcpy(p + i, &s, std::min<size_t>(8, end - i));
    }
  });
}

void DramProbe::Free::operator()(void* p) const {
  std::free(p);
}

DramProbe::DramProbe(ThreadPool& pool, size_t bytes)
    : pool_(pool), bytes_(std::max<size_t>(4096, (bytes + 4095) / 4096 * 4096)) {
  buf_.reset(static_cast<uint64_t*>(std::aligned_alloc(4096, bytes_)));
  if (!buf_) fail(ErrorKind::kOutOfMemory, "DRAM probe: cannot allocate {} MiB", bytes_ >> 20);
  fill_random(pool_, reinterpret_cast<uint8_t*>(buf_.get()), bytes_, 1);
}

double DramProbe::rate(int reps) {
  const int64_t parts = int64_t(pool_.size()) * 4;  // claimed dynamically: a slow core gets fewer
  const size_t words = bytes_ / 8, per = words / size_t(parts);
  const uint64_t* p = buf_.get();
  std::vector<uint64_t> sink(size_t(pool_.size()) * 8);  // a cache line per thread
  std::vector<double> t;
  for (int rep = 0; rep < std::max(1, reps); ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    pool_.run(parts, [&](int64_t part, int thread) {
      const uint64_t* q = p + size_t(part) * per;
      uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
      for (size_t i = 0; i + 8 <= per; i += 8) {
        a0 ^= q[i], a1 ^= q[i + 1], a2 ^= q[i + 2], a3 ^= q[i + 3];
        a4 ^= q[i + 4], a5 ^= q[i + 5], a6 ^= q[i + 6], a7 ^= q[i + 7];
      }
      sink[size_t(thread) * 8] += a0 ^ a1 ^ a2 ^ a3 ^ a4 ^ a5 ^ a6 ^ a7;
    });
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  uint64_t x = 0;
  for (uint64_t s : sink) x ^= s;
  g_sink = x;  // the folded words are used: the loads stay
  const double m = median(std::move(t));
  return m > 0 ? double(per * size_t(parts) * 8) / m : 0.0;
}

}  // namespace cs
