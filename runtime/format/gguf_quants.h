// GGML block formats: dequantization (every type we convert), lossless transcoding of
// Q4_0/Q4_1/Q4_K/Q8_0 rows into our Q4/Q8 layouts (kernels/quant.h), and simple
// round-to-nearest quantizers for the GGUF writer (synthetic models, test fixtures).
//
// Blocks (32 weights unless noted; fp16 scalars):
//   Q4_0 {d, qs[16]}           w = d * (q - 8); byte j: weight j (low nibble), j + 16 (high)
//   Q4_1 {d, m, qs[16]}        w = d * q + m
//   Q8_0 {d, int8 qs[32]}      w = d * q
//   Q4_K 256 weights {d, dmin, scales[12], qs[128]}: eight sub-blocks of 32 with 6-bit scale sc
//        and min mn, w = d * sc * q - dmin * mn; qs holds 64-weight chunks, low nibbles first
//   Q6_K 256 weights {ql[128], qh[64], int8 scales[16], d}: w = d * sc * (q - 32), 6-bit q
#pragma once

#include <cstdint>
#include <optional>

#include "runtime/format/quant_policy.h"

namespace cs {

// Bytes of one row of `n` weights (n a multiple of the block).
uint64_t gguf_row_bytes(uint32_t type, int64_t n);
// Dequantizes n weights (a multiple of the block) of a supported type.
void gguf_dequantize(uint32_t type, const uint8_t* src, int64_t n, float* out);
// The Q4/Q8 layout a type's codes map onto without requantizing: Q4_0 -> q4/32, Q4_1 and
// Q4_K -> q4-asym/32 (Q4_K's d*sc and -dmin*mn are rounded to fp16 once), Q8_0 -> q8/32.
std::optional<TensorFormat> gguf_native_format(uint32_t type);
// REQUIRES: gguf_native_format(type). One row of n weights into codes/scales/mins.
void gguf_transcode_row(uint32_t type, const uint8_t* src, int64_t n, uint8_t* codes,
                        uint16_t* scales, uint16_t* mins);
// Quantizes one row of n weights (round-to-nearest) into `dst` (gguf_row_bytes bytes).
void gguf_quantize_row(uint32_t type, const float* x, int64_t n, uint8_t* dst);

}  // namespace cs
