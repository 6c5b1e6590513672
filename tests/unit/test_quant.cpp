#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "common/half.h"
#include "kernels/quant.h"

using namespace cs;

namespace {

std::vector<float> random_row(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

}  // namespace

TEST_CASE("Q4 quantization round-trips within half a step, both symmetric and asymmetric") {
  for (int group : {32, 64, 128}) {
    for (bool asym : {false, true}) {
      const int C = 256;
      std::vector<float> row = random_row(C, uint32_t(group + asym));
      std::vector<uint8_t> codes(C / 2);
      std::vector<uint16_t> scales(C / group), mins(C / group);
      quantize_row_q4(row, group, asym, codes.data(), scales.data(), asym ? mins.data() : nullptr);
      MatView w;
      w.dtype = DType::kQ4;
      w.data = codes.data();
      w.scales = scales.data();
      w.mins = asym ? mins.data() : nullptr;
      w.rows = 1;
      w.cols = C;
      w.group = group;
      std::vector<float> back(C);
      dequantize_row(w, 0, back.data());
      for (int c = 0; c < C; ++c) {
        const float d = f16_to_f32(scales[c / group]);
        // Symmetric codes span -8d .. 7d: the extreme weight is exact, its opposite side clamps.
        float target = row[c];
        if (!asym) target = std::clamp(target, std::min(-8 * d, 7 * d), std::max(-8 * d, 7 * d));
        REQUIRE(std::fabs(back[c] - target) <= 0.5f * std::fabs(d) * 1.01f + 1e-3f);
      }
    }
  }
}

TEST_CASE("Q4 nibble order: byte j holds weight j (low) and j + 16 (high) of each block of 32") {
  std::vector<float> row(32);
  for (int i = 0; i < 32; ++i) row[i] = float(i % 16) - 8.0f;  // codes 0..15 twice with d = 1
  row[0] = -8.0f;
  std::vector<uint8_t> codes(16);
  uint16_t scale = 0;
  quantize_row_q4(row, 32, false, codes.data(), &scale, nullptr);
  CHECK(f16_to_f32(scale) == 1.0f);
  for (int j = 0; j < 16; ++j) {
    CHECK((codes[j] & 15) == j % 16);
    CHECK((codes[j] >> 4) == (j + 16) % 16);
  }
}

TEST_CASE("Q8 round-trips within half a step") {
  const int C = 128;
  std::vector<float> row = random_row(C, 7);
  std::vector<int8_t> codes(C);
  std::vector<uint16_t> scales(C / 32);
  quantize_row_q8(row, 32, codes.data(), scales.data());
  MatView w{DType::kQ8, codes.data(), scales.data(), nullptr, 1, C, 32};
  std::vector<float> back(C);
  dequantize_row(w, 0, back.data());
  for (int c = 0; c < C; ++c)
    CHECK(std::fabs(back[c] - row[c]) <= 0.5f * f16_to_f32(scales[c / 32]) * 1.01f);
}
