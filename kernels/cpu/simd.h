// The per-instruction-set kernel table behind the fast CPU paths (internal to kernels/cpu).
//
// One generic implementation (simd_kernels.inc) is compiled once per instruction set, each copy
// inside a region with that set's target attribute (isa_*.cpp), so one binary carries every level
// and runs on an AVX2-only desktop. The drivers (cpu_moe.cpp, fast_backend.cpp) are plain C++
// and call through the table.
//
// Activations of quantized matmuls are quantized to int8 per block of 32 columns with one fp32
// scale s per block: x[32b + j] ~= s[b] * q[32b + j]. Codes are stored in the table's chunk
// order (`QActRow`), so a chunk of weights and of activations line up after one unpack:
//   scalar, AVX2: natural order, one block per chunk;
//   AVX-512: blocks in pairs, each pair as [b0 0..15 | b1 0..15 | b0 16..31 | b1 16..31] (what
//   one broadcast-and-shift unpack of 32 Q4 bytes gives); an odd last block is in natural order.
// Dot products of Q4 codes (0..15) with int8 activations are exact integers per block; the
// zero point (-8 d for symmetric Q4, the min m for asymmetric) is applied once per group through
// the block sums bsum. Q8 weights use the sign trick (|w| * sign(a, w)); their codes are -127..127.
//
// Thread-safety: kernels are pure functions of their arguments.
#pragma once

#include <cstdint>

#include "kernels/cpu/cpu_features.h"
#include "kernels/types.h"

namespace cs::cpu {

inline constexpr int kQBlock = 32;      // activation quantization block
inline constexpr int kMaxTileRows = 4;  // rows per call of qdot / fdot

// One quantized activation row of C columns (C a multiple of 32).
struct QActRow {
  int8_t* q = nullptr;    // [C] codes in chunk order
  float* s = nullptr;     // [C/32] block scales
  float* bsum = nullptr;  // [C/32] s[b] * (sum of the codes of block b), for zero points
};

// The view of columns [c0, c0 + ...) of a row. REQUIRES: c0 % 64 == 0 (whole pairs of blocks).
inline QActRow qact_slice(const QActRow& a, int64_t c0) {
  return {a.q + c0, a.s + c0 / 32, a.bsum + c0 / 32};
}

// Bytes of one quantized activation row of C columns, and how to lay it out in them.
// REQUIRES: C % 32 == 0; `mem` 64-byte aligned.
int64_t qact_bytes(int64_t C);
QActRow qact_view(void* mem, int64_t C);

// Up to kMaxTileRows rows of a Q4 or Q8 matrix (possibly of different matrices with the same
// dtype, group and columns, e.g. gate and up rows fused in one tile).
struct QRows {
  DType dtype = DType::kQ4;
  int group = 32;
  int64_t cols = 0;
  int n = 0;
  const void* codes[kMaxTileRows] = {};
  const uint16_t* scales[kMaxTileRows] = {};
  const uint16_t* mins[kMaxTileRows] = {};  // all null: symmetric
  // Software prefetch distance in bytes of codes (0: none). Rows of a matrix are contiguous, so
  // prefetching each row's stream ahead also fetches the rows after it, and the next rows'
  // scales are prefetched when a tile starts: short 2 KB rows give the hardware prefetcher
  // little time to lock on.
  int prefetch = 0;
};

// Up to kMaxTileRows rows of an F32, F16 or BF16 matrix.
struct FRows {
  DType dtype = DType::kF32;
  int64_t cols = 0;
  int n = 0;
  const void* data[kMaxTileRows] = {};
};

struct CpuKernels {
  CpuIsa isa;
  // Quantizes one row x[C] into `out`. REQUIRES: C % 32 == 0.
  void (*quantize)(const float* x, int64_t C, const QActRow& out);
  // out[r * rs + t * ts] = dot(row r of w, act t) for r < w.n, t < n_acts.
  void (*qdot)(const QRows& w, const QActRow* acts, int n_acts, float* out, int64_t rs, int64_t ts);
  // out[r * rs + t * ts] = dot(row r of w, x[t]) for r < w.n, t < n_x.
  void (*fdot)(const FRows& w, const float* const* x, int n_x, float* out, int64_t rs, int64_t ts);
};

// The table of a level. REQUIRES: cpu_isa_supported(isa), isa != kAuto.
const CpuKernels& kernels_for(CpuIsa isa);

// Views of quantized rows: row `r` of a Q4/Q8 matrix.
inline const void* q_row_codes(const MatView& w, int64_t r) {
  const int64_t bytes = w.dtype == DType::kQ4 ? w.cols / 2 : w.cols;
  return static_cast<const uint8_t*>(w.data) + r * bytes;
}
inline const uint16_t* q_row_scales(const MatView& w, int64_t r) {
  return w.scales + r * (w.cols / w.group);
}
inline const uint16_t* q_row_mins(const MatView& w, int64_t r) {
  return w.mins ? w.mins + r * (w.cols / w.group) : nullptr;
}
inline const void* f_row(const MatView& w, int64_t r) {
  return static_cast<const uint8_t*>(w.data) + r * w.cols * (w.dtype == DType::kF32 ? 4 : 2);
}

}  // namespace cs::cpu
