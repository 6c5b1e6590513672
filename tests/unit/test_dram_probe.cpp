// DramProbe: the DRAM read rate that cs_bench_cpu_moe and bench-offload both report.
#include <doctest/doctest.h>

#include <cmath>

#include "kernels/cpu/dram_probe.h"

using namespace cs;

TEST_CASE("dram probe: measures a finite, plausible read rate on any pool size") {
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    ThreadPoolOptions po;
    po.threads = threads;
    po.pin = false;
    ThreadPool pool(po);
    DramProbe probe(pool, (32u << 20) + 100);  // rounded up to whole pages
    CHECK(probe.bytes() % 4096 == 0);
    CHECK(probe.bytes() >= (32u << 20) + 100);
    const double r = probe.rate(3);
    CHECK(std::isfinite(r));
    // A memory system reads between 100 MB/s (a loaded VM) and 10 TB/s.
    CHECK(r > 1e8);
    CHECK(r < 1e13);
  }
}
