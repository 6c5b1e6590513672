// Group-wise quantized weights: the layout every backend reads, and the reference
// quantize/dequantize routines that define it.
//
// Q4 layout of one row of C weights (C a multiple of 32):
//   data:   C/2 bytes. Weights come in blocks of 32; in block b, byte b*16 + j holds weight
//           b*32 + j in its low nibble and weight b*32 + j + 16 in its high nibble. This is
//           GGUF Q4_0's order: Q4_0/Q4_1/Q4_K codes convert without reordering, and a SIMD
//           unpack is one AND (low halves) and one shift (high halves) giving 32 weights in order.
//   scales: C/group fp16 values d; mins (asymmetric only): C/group fp16 values m.
//   value:  symmetric d * (q - 8); asymmetric d * q + m. q is the unsigned 4-bit code 0..15.
// Codes, scales and mins are separate arrays so a GPU warp reads each with wide coalesced loads.
//
// Q8 layout: data is C int8 codes per row, scales C/group fp16; value d * q.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/types.h"

namespace cs {

// Writes row `r` of `w` as floats into out[0..w.cols). Works for every DType.
void dequantize_row(const MatView& w, int64_t r, float* out);

// Quantizes one row by round-to-nearest. `codes` receives C/2 (Q4) or C (Q8) bytes, `scales`
// and `mins` C/group fp16 values (`mins` only for asymmetric Q4; pass an empty span otherwise).
// Symmetric Q4 takes the weight v of largest magnitude, d = v / -8 and q = clamp(round(w/d) + 8,
// 0, 15), so v itself is exact (as GGUF Q4_0 does); asymmetric uses d = (max - min) / 15, m = min.
// Q8 uses d = max|w| / 127.
void quantize_row_q4(std::span<const float> row, int group, bool asymmetric, uint8_t* codes,
                     uint16_t* scales, uint16_t* mins);
void quantize_row_q8(std::span<const float> row, int group, int8_t* codes, uint16_t* scales);

}  // namespace cs
