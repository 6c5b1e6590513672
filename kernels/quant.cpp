#include "kernels/quant.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/half.h"

namespace cs {

void dequantize_row(const MatView& w, int64_t r, float* out) {
  const int64_t C = w.cols;
  switch (w.dtype) {
    case DType::kF32: {
      const float* p = static_cast<const float*>(w.data) + r * C;
      std::copy(p, p + C, out);
      return;
    }
    case DType::kF16: {
      const uint16_t* p = static_cast<const uint16_t*>(w.data) + r * C;
      for (int64_t c = 0; c < C; ++c) out[c] = f16_to_f32(p[c]);
      return;
    }
    case DType::kBF16: {
      const uint16_t* p = static_cast<const uint16_t*>(w.data) + r * C;
      for (int64_t c = 0; c < C; ++c) out[c] = bf16_to_f32(p[c]);
      return;
    }
    case DType::kQ8: {
      const int8_t* q = static_cast<const int8_t*>(w.data) + r * C;
      const uint16_t* d = w.scales + r * (C / w.group);
      for (int64_t c = 0; c < C; ++c) out[c] = f16_to_f32(d[c / w.group]) * float(q[c]);
      return;
    }
    case DType::kQ4: {
      const uint8_t* q = static_cast<const uint8_t*>(w.data) + r * (C / 2);
      const uint16_t* d = w.scales + r * (C / w.group);
      const uint16_t* m = w.mins ? w.mins + r * (C / w.group) : nullptr;
      for (int64_t b = 0; b < C / 32; ++b) {
        for (int j = 0; j < 16; ++j) {
          const uint8_t byte = q[b * 16 + j];
          const int64_t c0 = b * 32 + j, c1 = c0 + 16;
          const float d0 = f16_to_f32(d[c0 / w.group]), d1 = f16_to_f32(d[c1 / w.group]);
          if (m) {
            out[c0] = d0 * float(byte & 15) + f16_to_f32(m[c0 / w.group]);
            out[c1] = d1 * float(byte >> 4) + f16_to_f32(m[c1 / w.group]);
          } else {
            out[c0] = d0 * float(int(byte & 15) - 8);
            out[c1] = d1 * float(int(byte >> 4) - 8);
          }
        }
      }
      return;
    }
  }
}

void quantize_row_q4(std::span<const float> row, int group, bool asymmetric, uint8_t* codes,
                     uint16_t* scales, uint16_t* mins) {
  const size_t C = row.size();
  std::vector<uint8_t> q(C);
  for (size_t g = 0; g < C / group; ++g) {
    const float* x = row.data() + g * group;
    if (asymmetric) {
      float lo = x[0], hi = x[0];
      for (int i = 1; i < group; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
      const uint16_t dh = f32_to_f16((hi - lo) / 15.0f), mh = f32_to_f16(lo);
      const float d = f16_to_f32(dh), m = f16_to_f32(mh);
      const float inv = d != 0 ? 1.0f / d : 0.0f;
      for (int i = 0; i < group; ++i)
        q[g * group + i] = uint8_t(std::clamp(int(std::lround((x[i] - m) * inv)), 0, 15));
      scales[g] = dh;
      mins[g] = mh;
    } else {
      float v = 0;
      for (int i = 0; i < group; ++i)
        if (std::fabs(x[i]) > std::fabs(v)) v = x[i];
      const uint16_t dh = f32_to_f16(v / -8.0f);
      const float d = f16_to_f32(dh);
      const float inv = d != 0 ? 1.0f / d : 0.0f;
      for (int i = 0; i < group; ++i)
        q[g * group + i] = uint8_t(std::clamp(int(std::lround(x[i] * inv)) + 8, 0, 15));
      scales[g] = dh;
    }
  }
  for (size_t b = 0; b < C / 32; ++b)
    for (int j = 0; j < 16; ++j)
      codes[b * 16 + j] = uint8_t(q[b * 32 + j] | (q[b * 32 + j + 16] << 4));
}

void quantize_row_q8(std::span<const float> row, int group, int8_t* codes, uint16_t* scales) {
  const size_t C = row.size();
  for (size_t g = 0; g < C / group; ++g) {
    const float* x = row.data() + g * group;
    float amax = 0;
    for (int i = 0; i < group; ++i) amax = std::max(amax, std::fabs(x[i]));
    const uint16_t dh = f32_to_f16(amax / 127.0f);
    const float d = f16_to_f32(dh);
    const float inv = d != 0 ? 1.0f / d : 0.0f;
    for (int i = 0; i < group; ++i)
      codes[g * group + i] = int8_t(std::clamp(int(std::lround(x[i] * inv)), -127, 127));
    scales[g] = dh;
  }
}

}  // namespace cs
