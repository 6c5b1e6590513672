#include "runtime/format/gguf_quants.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <span>

#include "common/error.h"
#include "common/half.h"
#include "kernels/quant.h"
#include "runtime/format/gguf.h"

namespace cs {
namespace {

uint16_t ld16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
void st16(uint8_t* p, uint16_t v) {
  std::memcpy(p, &v, 2);
}

// Q4_K's packed 6-bit scale and min of sub-block j (ggml's get_scale_min_k4).
void k4_scale_min(int j, const uint8_t* q, int* sc, int* mn) {
  if (j < 4) {
    *sc = q[j] & 63;
    *mn = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// The 256 codes (0..15) of a Q4_K block in weight order.
void k4_codes(const uint8_t* qs, uint8_t* q) {
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      q[64 * c + l] = qs[32 * c + l] & 15;
      q[64 * c + 32 + l] = qs[32 * c + l] >> 4;
    }
}

// The 256 codes (0..63) of a Q6_K block in weight order.
void k6_codes(const uint8_t* ql, const uint8_t* qh, uint8_t* q) {
  for (int h = 0; h < 2; ++h, ql += 64, qh += 32)
    for (int l = 0; l < 32; ++l) {
      const int n = 128 * h;
      q[n + l] = uint8_t((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4));
      q[n + l + 32] = uint8_t((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4));
      q[n + l + 64] = uint8_t((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
      q[n + l + 96] = uint8_t((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
    }
}

// Packs 32 codes of weight order into our nibble order (byte j: j low, j + 16 high).
void pack32(const uint8_t* q, uint8_t* out) {
  for (int j = 0; j < 16; ++j) out[j] = uint8_t(q[j] | (q[j + 16] << 4));
}

void quantize_q4_k(const float* x, uint8_t* b) {
  float scale[8], minv[8];
  for (int s = 0; s < 8; ++s) {
    const float* v = x + 32 * s;
    float lo = std::min(0.0f, *std::min_element(v, v + 32)), hi = *std::max_element(v, v + 32);
    scale[s] = (hi - lo) / 15.0f;
    minv[s] = -lo;
  }
  const float d = f16_to_f32(f32_to_f16(*std::max_element(scale, scale + 8) / 63.0f));
  const float dm = f16_to_f32(f32_to_f16(*std::max_element(minv, minv + 8) / 63.0f));
  st16(b, f32_to_f16(d));
  st16(b + 2, f32_to_f16(dm));
  int sc[8], mn[8];
  for (int s = 0; s < 8; ++s) {
    sc[s] = d > 0 ? std::clamp(int(std::lround(scale[s] / d)), 0, 63) : 0;
    mn[s] = dm > 0 ? std::clamp(int(std::lround(minv[s] / dm)), 0, 63) : 0;
  }
  uint8_t* q = b + 4;
  for (int j = 0; j < 4; ++j) {
    q[j] = uint8_t((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    q[j + 4] = uint8_t((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
    q[j + 8] = uint8_t((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
  }
  uint8_t codes[256];
  for (int i = 0; i < 256; ++i) {
    const float step = d * float(sc[i / 32]);
    const float v = (x[i] + dm * float(mn[i / 32])) / (step > 0 ? step : 1.0f);
    codes[i] = step > 0 ? uint8_t(std::clamp(int(std::lround(v)), 0, 15)) : 0;
  }
  uint8_t* qs = b + 16;
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l)
      qs[32 * c + l] = uint8_t(codes[64 * c + l] | (codes[64 * c + 32 + l] << 4));
}

void quantize_q6_k(const float* x, uint8_t* b) {
  float scale[16];
  float amax = 0;
  for (int s = 0; s < 16; ++s) {
    float v = 0;
    for (int i = 0; i < 16; ++i)
      if (std::fabs(x[16 * s + i]) > std::fabs(v)) v = x[16 * s + i];
    scale[s] = v / -32.0f;
    amax = std::max(amax, std::fabs(scale[s]));
  }
  const float d = f16_to_f32(f32_to_f16(amax / 127.0f));
  int8_t* sc = reinterpret_cast<int8_t*>(b + 192);
  uint8_t q[256];
  for (int s = 0; s < 16; ++s) {
    sc[s] = int8_t(d > 0 ? std::clamp(int(std::lround(scale[s] / d)), -128, 127) : 0);
    const float step = d * float(sc[s]);
    for (int i = 0; i < 16; ++i) {
      const float v = step != 0 ? x[16 * s + i] / step : 0.0f;
      q[16 * s + i] = uint8_t(std::clamp(int(std::lround(v)), -32, 31) + 32);
    }
  }
  uint8_t *ql = b, *qh = b + 128;
  for (int h = 0; h < 2; ++h, ql += 64, qh += 32)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* p = q + 128 * h;
      ql[l] = uint8_t((p[l] & 0xF) | ((p[l + 64] & 0xF) << 4));
      ql[l + 32] = uint8_t((p[l + 32] & 0xF) | ((p[l + 96] & 0xF) << 4));
      qh[l] = uint8_t((p[l] >> 4) | ((p[l + 32] >> 4) << 2) | ((p[l + 64] >> 4) << 4) |
                      ((p[l + 96] >> 4) << 6));
    }
  st16(b + 208, f32_to_f16(d));
}

}  // namespace

uint64_t gguf_row_bytes(uint32_t type, int64_t n) {
  return uint64_t(n) / ggml_block_weights(type) * ggml_block_bytes(type);
}

void gguf_dequantize(uint32_t type, const uint8_t* src, int64_t n, float* out) {
  const int64_t bw = ggml_block_weights(type), bb = ggml_block_bytes(type);
  for (int64_t b = 0; b < n / bw; ++b, src += bb, out += bw) {
    switch (type) {
      case kGgmlF32:
        std::memcpy(out, src, 4);
        break;
      case kGgmlF16:
        out[0] = f16_to_f32(ld16(src));
        break;
      case kGgmlBF16:
        out[0] = bf16_to_f32(ld16(src));
        break;
      case kGgmlQ4_0: {
        const float d = f16_to_f32(ld16(src));
        for (int j = 0; j < 16; ++j) {
          out[j] = d * float((src[2 + j] & 15) - 8);
          out[j + 16] = d * float((src[2 + j] >> 4) - 8);
        }
        break;
      }
      case kGgmlQ4_1: {
        const float d = f16_to_f32(ld16(src)), m = f16_to_f32(ld16(src + 2));
        for (int j = 0; j < 16; ++j) {
          out[j] = d * float(src[4 + j] & 15) + m;
          out[j + 16] = d * float(src[4 + j] >> 4) + m;
        }
        break;
      }
      case kGgmlQ8_0: {
        const float d = f16_to_f32(ld16(src));
        for (int j = 0; j < 32; ++j) out[j] = d * float(int8_t(src[2 + j]));
        break;
      }
      case kGgmlQ4_K: {
        const float d = f16_to_f32(ld16(src)), dm = f16_to_f32(ld16(src + 2));
        uint8_t q[256];
        k4_codes(src + 16, q);
        for (int s = 0; s < 8; ++s) {
          int sc, mn;
          k4_scale_min(s, src + 4, &sc, &mn);
          for (int i = 0; i < 32; ++i)
            out[32 * s + i] = d * float(sc) * float(q[32 * s + i]) - dm * float(mn);
        }
        break;
      }
      case kGgmlQ6_K: {
        const float d = f16_to_f32(ld16(src + 208));
        const int8_t* sc = reinterpret_cast<const int8_t*>(src + 192);
        uint8_t q[256];
        k6_codes(src, src + 128, q);
        for (int i = 0; i < 256; ++i) out[i] = d * float(sc[i / 16]) * float(int(q[i]) - 32);
        break;
      }
      default:
        fail(ErrorKind::kUnsupported, "GGML type {} cannot be dequantized", ggml_type_name(type));
    }
  }
}

std::optional<TensorFormat> gguf_native_format(uint32_t type) {
  switch (type) {
    case kGgmlQ4_0:
      return TensorFormat{DType::kQ4, 32, false};
    case kGgmlQ4_1:
    case kGgmlQ4_K:
      return TensorFormat{DType::kQ4, 32, true};
    case kGgmlQ8_0:
      return TensorFormat{DType::kQ8, 32, false};
  }
  return std::nullopt;
}

void gguf_transcode_row(uint32_t type, const uint8_t* src, int64_t n, uint8_t* codes,
                        uint16_t* scales, uint16_t* mins) {
  const int64_t bb = ggml_block_bytes(type);
  switch (type) {
    case kGgmlQ4_0:
      for (int64_t b = 0; b < n / 32; ++b, src += bb) {
        scales[b] = ld16(src);
        std::memcpy(codes + 16 * b, src + 2, 16);
      }
      return;
    case kGgmlQ4_1:
      for (int64_t b = 0; b < n / 32; ++b, src += bb) {
        scales[b] = ld16(src);
        mins[b] = ld16(src + 2);
        std::memcpy(codes + 16 * b, src + 4, 16);
      }
      return;
    case kGgmlQ8_0:
      for (int64_t b = 0; b < n / 32; ++b, src += bb) {
        scales[b] = ld16(src);
        std::memcpy(codes + 32 * b, src + 2, 32);
      }
      return;
    case kGgmlQ4_K:
      for (int64_t b = 0; b < n / 256; ++b, src += bb) {
        const float d = f16_to_f32(ld16(src)), dm = f16_to_f32(ld16(src + 2));
        uint8_t q[256];
        k4_codes(src + 16, q);
        for (int s = 0; s < 8; ++s) {
          int sc, mn;
          k4_scale_min(s, src + 4, &sc, &mn);
          scales[8 * b + s] = f32_to_f16(d * float(sc));
          mins[8 * b + s] = f32_to_f16(-dm * float(mn));
          pack32(q + 32 * s, codes + 128 * b + 16 * s);
        }
      }
      return;
  }
  fail(ErrorKind::kInternal, "GGML type {} has no native Q4/Q8 layout", ggml_type_name(type));
}

void gguf_quantize_row(uint32_t type, const float* x, int64_t n, uint8_t* dst) {
  const int64_t bb = ggml_block_bytes(type);
  std::span<const float> row(x, size_t(n));
  switch (type) {
    case kGgmlF32:
      std::memcpy(dst, x, size_t(n) * 4);
      return;
    case kGgmlF16:
    case kGgmlBF16:
      for (int64_t i = 0; i < n; ++i)
        st16(dst + 2 * i, type == kGgmlF16 ? f32_to_f16(x[i]) : f32_to_bf16(x[i]));
      return;
    case kGgmlQ4_0:
    case kGgmlQ4_1:
      for (int64_t b = 0; b < n / 32; ++b, dst += bb) {
        uint16_t d, m;
        const bool asym = type == kGgmlQ4_1;
        quantize_row_q4(row.subspan(size_t(32 * b), 32), 32, asym, dst + (asym ? 4 : 2), &d, &m);
        st16(dst, d);
        if (asym) st16(dst + 2, m);
      }
      return;
    case kGgmlQ8_0:
      for (int64_t b = 0; b < n / 32; ++b, dst += bb) {
        uint16_t d;
        quantize_row_q8(row.subspan(size_t(32 * b), 32), 32, reinterpret_cast<int8_t*>(dst + 2),
                        &d);
        st16(dst, d);
      }
      return;
    case kGgmlQ4_K:
      for (int64_t b = 0; b < n / 256; ++b) quantize_q4_k(x + 256 * b, dst + bb * b);
      return;
    case kGgmlQ6_K:
      for (int64_t b = 0; b < n / 256; ++b) quantize_q6_k(x + 256 * b, dst + bb * b);
      return;
  }
  fail(ErrorKind::kUnsupported, "cannot write GGML type {}", ggml_type_name(type));
}

}  // namespace cs
