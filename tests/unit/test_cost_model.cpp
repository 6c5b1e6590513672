// The cost model (cache/cost_model.h): every expected number follows from the formulas in the
// header with round parameters (1 MB experts, 1 GB/s copies = 1 ms per copy).
#include <doctest/doctest.h>

#include "cache/cost_model.h"
#include "common/error.h"

using namespace cs;

namespace {

CostParams round_params() {
  CostParams p;
  p.expert_bytes = 1000000;
  p.copy_rate = 1e9;  // 1 ms per copy
  p.copy_latency = 0;
  p.nvme_rate = 0.5e9;  // 2 ms per read
  p.nvme_latency = 0;
  p.dram_rate = 2e9;   // 0.5 ms per expert read
  p.gpu_rate = 100e9;  // 10 us per expert
  p.cpu_fixed = 0.1e-3;
  p.layer_fixed = 0.05e-3;
  return p;
}

}  // namespace

TEST_CASE("cost model: copies, reads and kernels from rates") {
  const CostModel m(round_params());
  CHECK(m.copy_seconds() == doctest::Approx(1e-3));
  CHECK(m.nvme_seconds() == doctest::Approx(2e-3));
  CHECK(m.cpu_seconds(1) == doctest::Approx(0.5e-3));
  CHECK(m.cpu_seconds(4) == doctest::Approx(2e-3));  // no table: linear in tokens
  CHECK(m.gpu_seconds(1) == doctest::Approx(10e-6));
  CostParams no_nvme = round_params();
  no_nvme.nvme_rate = 0;
  CHECK(CostModel(no_nvme).nvme_seconds() == 0);
}

TEST_CASE("cost model: token tables interpolate, extrapolate and respect the DRAM floor") {
  CostParams p = round_params();
  p.cpu = {{1, 0.2e-3}, {8, 0.9e-3}, {64, 4e-3}};  // the first point is below the DRAM floor
  const CostModel m(p);
  CHECK(m.cpu_seconds(1) == doctest::Approx(0.5e-3));  // floored: bytes / dram_rate
  CHECK(m.cpu_seconds(8) == doctest::Approx(0.9e-3));
  CHECK(m.cpu_seconds(36) == doctest::Approx(0.9e-3 + 0.5 * 3.1e-3));
  CHECK(m.cpu_seconds(128) == doctest::Approx(8e-3));  // beyond the table: proportional
  p.gpu = {{1, 20e-6}, {256, 500e-6}};
  const CostModel g(p);
  CHECK(g.gpu_seconds(1) == doctest::Approx(20e-6));
  CHECK(g.gpu_seconds(512) == doctest::Approx(1000e-6));
}

TEST_CASE("cost model: a pass takes the slower channel plus the layer's fixed cost") {
  const CostModel m(round_params());
  PassLoad l;
  l.gpu_resident = 2;
  l.stream_tokens = {1, 1};
  l.cpu_tokens = {1, 1, 1};
  const PassTime t = m.pass_seconds(l);
  CHECK(t.copy_channel == doctest::Approx(2e-3 + 4 * 10e-6));
  CHECK(t.cpu_channel == doctest::Approx(0.1e-3 + 1.5e-3));
  CHECK(t.total == doctest::Approx(t.copy_channel + 0.05e-3));
  l.cpu_tokens.clear();
  CHECK(m.pass_seconds(l).cpu_channel == 0);
  l.in_flight = 1;
  l.nvme_stream = 1;
  CHECK(m.pass_seconds(l).copy_channel == doctest::Approx(3e-3 + 2e-3 + 5 * 10e-6));
  // Decode estimate: 10 layers, 4 hits, 2 copied, 2 on the CPU per layer.
  CHECK(m.decode_token_seconds(10, 4, 2, 2, 1e-3) ==
        doctest::Approx(10 * (2e-3 + 6 * 10e-6 + 0.05e-3) + 1e-3));
}

TEST_CASE("cost model: invalid parameters are errors") {
  CostParams p = round_params();
  p.copy_rate = 0;
  CHECK_THROWS_AS(CostModel{p}, Error);
  p = round_params();
  p.cpu = {{8, 1e-3}, {4, 2e-3}};
  CHECK_THROWS_AS(CostModel{p}, Error);
}
