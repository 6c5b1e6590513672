// Device code shared by the GEMV kernels (gemv.cu, moe_down.cu): the per-chunk dot products and
// the staging of the input in shared memory.
//
// Every weight row is read in 16-byte chunks (4 F32, 8 F16/BF16, 16 Q8 or 32 Q4 weights); a lane
// multiplies one chunk with the matching input values held in shared memory (layouts at Staged:
// the 32 lanes of a warp read consecutive 16-byte units, no bank conflicts). Each lane loads its
// chunk's inputs once and uses them for every row it computes.
//
// Q4/Q8 use integer dot products: the block stages its input quantized to int8 per 32 values (as
// the CPU expert kernels do), and a 16-byte chunk of weights costs 4 (Q8) or 8 (Q4: two nibble
// masks per word) dp4a instructions plus one scale multiply-add, against one float FMA per
// weight before: the decode GEMVs were latency-bound on the instructions of each warp (docs/
// PERF.md, ncu). The input quantization costs about 0.5% relative error per dot product
// (docs/CUDA.md); F32/F16/BF16 weights keep fp32 inputs.
#pragma once

#include "kernels/cuda/device.cuh"

namespace cs::cuda {

template <DType DT>
__host__ __device__ constexpr int weights_per_chunk() {
  return DT == DType::kF32 ? 4 : DT == DType::kQ8 ? 16 : DT == DType::kQ4 ? 32 : 8;
}
template <DType DT>
__host__ __device__ constexpr int64_t row_bytes(int64_t C) {
  return DT == DType::kF32 ? C * 4 : DT == DType::kQ8 ? C : DT == DType::kQ4 ? C / 2 : C * 2;
}
template <DType DT>
__host__ __device__ constexpr bool is_quant() {
  return DT == DType::kQ4 || DT == DType::kQ8;
}

__device__ __forceinline__ float dot4(float a, float b, float c, float d, float4 x) {
  return a * x.x + b * x.y + c * x.z + d * x.w;
}

template <DType DT>
__host__ __device__ constexpr int float4_per_chunk() {
  return weights_per_chunk<DT>() / 4;
}

// Dot product of one 16-byte chunk of a float dtype with the matching x values (registers,
// float4_per_chunk of them).
template <DType DT>
__device__ __forceinline__ float chunk_dot(const uint4 w, const float4* x4) {
  const uint32_t v[4] = {w.x, w.y, w.z, w.w};
  float s = 0.0f;
  if constexpr (DT == DType::kF32) {
    s = dot4(__uint_as_float(v[0]), __uint_as_float(v[1]), __uint_as_float(v[2]),
             __uint_as_float(v[3]), x4[0]);
  } else if constexpr (DT == DType::kBF16) {
#pragma unroll
    for (int k = 0; k < 4; k += 2)
      s +=
          dot4(__uint_as_float(v[k] << 16), __uint_as_float(v[k] & 0xffff0000u),
               __uint_as_float(v[k + 1] << 16), __uint_as_float(v[k + 1] & 0xffff0000u), x4[k / 2]);
  } else {
#pragma unroll
    for (int k = 0; k < 4; k += 2) {
      const float2 a = __half22float2(*reinterpret_cast<const __half2*>(&v[k]));
      const float2 b = __half22float2(*reinterpret_cast<const __half2*>(&v[k + 1]));
      s += dot4(a.x, a.y, b.x, b.y, x4[k / 2]);
    }
  }
  return s;
}

// Integer dot product of one 16-byte chunk of codes with the int8 input codes xq: Q8, 16 signed
// weights against one 16-byte half of an input block; Q4, 32 codes 0..15 (byte j: weight j in
// the low nibble, j + 16 in the high one) against both halves of the block.
template <DType DT>
__device__ __forceinline__ int chunk_idot(const uint4 w, const uint4* xq) {
  const uint32_t v[4] = {w.x, w.y, w.z, w.w};
  const uint32_t a[4] = {xq[0].x, xq[0].y, xq[0].z, xq[0].w};
  int acc = 0;
  if constexpr (DT == DType::kQ8) {
#pragma unroll
    for (int k = 0; k < 4; ++k) acc = __dp4a(int(v[k]), int(a[k]), acc);
  } else {
    const uint32_t b[4] = {xq[1].x, xq[1].y, xq[1].z, xq[1].w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      acc = __dp4a(int(v[k] & 0x0f0f0f0fu), int(a[k]), acc);
      acc = __dp4a(int((v[k] >> 4) & 0x0f0f0f0fu), int(b[k]), acc);
    }
  }
  return acc;
}

// A weight matrix prepared for chunked reads: data, and for Q4/Q8 scales (and mins), with the
// row strides and the shift from a chunk index to its scale index (chunks per group is a power
// of two, see gemv_vec_ok). Built once per matrix. Chunk and group indices are 32-bit (the
// launchers refuse matrices of 2^31 chunks or more): an address is one multiply-add and one wide
// add, where 64-bit row offsets cost about 30 instructions per load pair (SASS, session 18) and
// made issuing a batch of loads slower than waiting for it.
struct MatRef {
  const uint4* w = nullptr;
  const uint16_t* s = nullptr;
  const uint16_t* m = nullptr;
  int cpr = 0;  // 16-byte chunks per row
  int gpr = 0;  // scales per row
  int gsh = 0;  // chunk index >> gsh = group index
};

template <DType DT>
__device__ __forceinline__ MatRef mat_ref(const MatView& v) {
  MatRef r;
  r.w = static_cast<const uint4*>(v.data);
  r.cpr = int(row_bytes<DT>(v.cols) / 16);
  if constexpr (is_quant<DT>()) {
    r.s = v.scales;
    r.m = v.mins;
    r.gpr = v.group > 0 ? int(v.cols) / v.group : 0;
    r.gsh = __ffs(max(v.group / weights_per_chunk<DT>(), 1)) - 1;
  }
  return r;
}

// Chunk c of row `row` as raw bits: streaming loads (weights are read once and must not evict the
// activations from the caches).
__device__ __forceinline__ uint4 load_w(const MatRef& r, int row, int c) {
  return __ldcs(r.w + (row * r.cpr + c));
}

// The chunk's group scale (low 16 bits) and min (high 16 bits, Q4 asymmetric) as packed fp16.
template <DType DT>
__device__ __forceinline__ uint32_t load_dm(const MatRef& r, int row, int c) {
  if constexpr (!is_quant<DT>()) {
    return 0;
  } else {
    const int g = row * r.gpr + (c >> r.gsh);
    uint32_t dm = __ldcs(r.s + g);
    if (DT == DType::kQ4 && r.m) dm |= uint32_t(__ldcs(r.m + g)) << 16;
    return dm;
  }
}

// The input of one chunk, in registers: float4_per_chunk float4s for float dtypes; for Q4/Q8 the
// int8 codes of the chunk's input (two 16-byte halves of a 32-value block for Q4, one half for
// Q8), the block's scale s and s * (sum of its codes) bs.
template <DType DT, bool Q = is_quant<DT>()>
struct XChunk {
  float4 v[float4_per_chunk<DT>()];
};
template <DType DT>
struct XChunk<DT, true> {
  uint4 q[DT == DType::kQ4 ? 2 : 1];
  float s, bs;
};

// The contribution of a chunk (bits w, packed scale/min dm) with its input x. Q4: w = d (q - 8)
// (symmetric) or d q + m, so the sum is d s (sum q a) - 8 d bs or d s (sum q a) + m bs, where a
// are the input codes, s their scale and bs = s sum a.
template <DType DT>
__device__ __forceinline__ float chunk_value(uint4 w, uint32_t dm, const XChunk<DT>& x,
                                             bool asymmetric) {
  if constexpr (is_quant<DT>()) {
    const float d = f16(uint16_t(dm & 0xffffu));
    const float dot = x.s * float(chunk_idot<DT>(w, x.q));
    if constexpr (DT == DType::kQ4)
      return asymmetric ? d * dot + f16(uint16_t(dm >> 16)) * x.bs : d * (dot - 8.0f * x.bs);
    return d * dot;
  } else {
    return chunk_dot<DT>(w, x.v);
  }
}

// Whether rows of `v` can be read in aligned 16-byte chunks: aligned data, whole chunks per row,
// and for Q4/Q8 whole chunks per scale group, a power of two of them.
template <DType DT>
__device__ __forceinline__ bool gemv_vec_ok(const MatView& v) {
  constexpr int WPC = weights_per_chunk<DT>();
  bool ok = reinterpret_cast<uintptr_t>(v.data) % 16 == 0 && row_bytes<DT>(v.cols) % 16 == 0 &&
            v.cols % WPC == 0;
  if constexpr (is_quant<DT>()) {
    const int cpg = v.group / WPC;
    ok = ok && v.group % WPC == 0 && cpg > 0 && (cpg & (cpg - 1)) == 0 && v.cols % v.group == 0;
  }
  return ok;
}

// Inputs in shared memory. Float dtypes: `segments` vectors of C floats, each chunk-interleaved
// when read in chunks (lane l of a warp takes chunk base + l, so float4 k of chunk c sits at
// xs4[k * nch + c] and the 32 lanes' loads of one float4 index are consecutive: no bank
// conflicts), in plain order otherwise. Q4/Q8: the input quantized to int8 per block of 32
// values as the CPU kernels do (kernels/cpu/simd_kernels.inc: scale amax / 127, codes rounded
// half away from zero), the codes of all segments first ([segments][C] bytes, a block's two
// 16-byte halves at units h * nb + b of its segment for Q4, so a warp's loads are consecutive,
// and in plain order for Q8, whose chunk is one half), then the scales and the scaled code sums
// ([segments][nb] floats each). C is a multiple of 32 for Q4/Q8 (groups of 32, 64 or 128).
template <DType DT>
struct Staged {
  const float* xf = nullptr;   // float dtypes: the segment's floats
  const float4* x4 = nullptr;  // the same, as float4s
  const uint4* q = nullptr;    // Q4/Q8: the segment's codes, 16 bytes per unit
  const float* s = nullptr;    // Q4/Q8: block scales
  const float* bs = nullptr;   // Q4/Q8: block scale * sum of the block's codes
  int n = 0;                   // chunks (float dtypes, chunked) or 32-value blocks (Q4/Q8)

  __device__ Staged(const void* smem, int C, int segments, int seg, bool vec) {
    if constexpr (is_quant<DT>()) {
      const int nb = C / 32;
      q = static_cast<const uint4*>(smem) + int64_t(seg) * C / 16;
      s = reinterpret_cast<const float*>(static_cast<const uint4*>(smem) +
                                         int64_t(segments) * C / 16) +
          seg * nb;
      bs = s + segments * nb;
      n = nb;
    } else {
      xf = static_cast<const float*>(smem) + int64_t(seg) * C;
      x4 = reinterpret_cast<const float4*>(xf);  // aligned when read in chunks (C % 4 == 0)
      n = vec ? C / weights_per_chunk<DT>() : 0;
    }
  }
  // The inputs of chunk c (read in chunks).
  __device__ __forceinline__ void load(int c, XChunk<DT>& x) const {
    if constexpr (DT == DType::kQ4) {
      x.q[0] = q[c];
      x.q[1] = q[n + c];
      x.s = s[c];
      x.bs = bs[c];
    } else if constexpr (DT == DType::kQ8) {
      x.q[0] = q[c];
      x.s = s[c >> 1];
    } else {
#pragma unroll
      for (int k = 0; k < float4_per_chunk<DT>(); ++k) x.v[k] = x4[k * n + c];
    }
  }
  // Input value i (rows not read in chunks: one element at a time).
  __device__ __forceinline__ float value(int i) const {
    if constexpr (is_quant<DT>()) {
      const int b = i / 32, j = i % 32;
      const int unit = DT == DType::kQ4 ? (j / 16) * n + b : 2 * b + j / 16;
      return s[b] * float(reinterpret_cast<const int8_t*>(q + unit)[j % 16]);
    } else {
      return xf[i];
    }
  }
};

// The int8 codes of a block of 32 values v (in registers), their scale and scaled sum.
__device__ __forceinline__ void quantize_block(const float4 (&v)[8], uint4& lo, uint4& hi, float& s,
                                               float& bs) {
  float amax = 0.0f;
#pragma unroll
  for (int k = 0; k < 8; ++k)
    amax = fmaxf(amax,
                 fmaxf(fmaxf(fabsf(v[k].x), fabsf(v[k].y)), fmaxf(fabsf(v[k].z), fabsf(v[k].w))));
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  uint32_t word[8];
  int sum = 0;
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    const float e[4] = {v[k].x, v[k].y, v[k].z, v[k].w};
    uint32_t packed = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float t = __fmul_rn(e[i], inv);  // not fused with the rounding offset (as the CPU)
      const int qi = max(-127, min(127, int(t + (t >= 0.0f ? 0.5f : -0.5f))));
      sum += qi;
      packed |= uint32_t(qi & 0xff) << (8 * i);
    }
    word[k] = packed;
  }
  lo = make_uint4(word[0], word[1], word[2], word[3]);
  hi = make_uint4(word[4], word[5], word[6], word[7]);
  s = amax / 127.0f;
  bs = s * float(sum);
}

// Stages `segments` consecutive input vectors of C values each (one per expert in moe_down, else
// one) in shared memory as described at Staged (`vec`: float dtypes read in chunks). A thread
// takes a whole chunk (float dtypes) or 32-value block (Q4/Q8): it loads the values together,
// writes them (or their codes) to their places and for Q4/Q8 quantizes them in registers, so
// staging costs one L2 round trip per unit a thread owns and no index division per element. Ends
// with a barrier.
template <DType DT>
__device__ __forceinline__ void stage_input(const float* x, int C, int segments, bool vec,
                                            void* smem) {
  constexpr bool kQuant = is_quant<DT>();
  constexpr int WPC = kQuant ? 32 : weights_per_chunk<DT>(), F4 = WPC / 4;
  const int step = blockDim.x;
  const bool aligned = reinterpret_cast<uintptr_t>(x) % 16 == 0;
  if (kQuant || (vec && C % WPC == 0 && C >= WPC)) {
    const int nch = C / WPC, total = nch * segments;
    for (int i = threadIdx.x; i < total; i += step) {
      const int seg = i / nch, c = i - seg * nch;
      const float* src = x + int64_t(seg) * C + int64_t(c) * WPC;
      float4 v[F4];
#pragma unroll
      for (int k = 0; k < F4; ++k)
        v[k] = aligned ? reinterpret_cast<const float4*>(src)[k]
                       : make_float4(src[4 * k], src[4 * k + 1], src[4 * k + 2], src[4 * k + 3]);
      if constexpr (kQuant) {
        uint4* q = static_cast<uint4*>(smem) + int64_t(seg) * C / 16;
        float* s = reinterpret_cast<float*>(static_cast<uint4*>(smem) + int64_t(segments) * C / 16);
        uint4 lo, hi;
        quantize_block(v, lo, hi, s[i], s[total + i]);
        q[DT == DType::kQ4 ? c : 2 * c] = lo;
        q[DT == DType::kQ4 ? nch + c : 2 * c + 1] = hi;
      } else {
        float4* dst = static_cast<float4*>(smem) + seg * (C / 4) + c;
#pragma unroll
        for (int k = 0; k < F4; ++k) dst[k * nch] = v[k];
      }
    }
    __syncthreads();
    return;
  }
  float* xs = static_cast<float*>(smem);
  for (int q = threadIdx.x; q < C * segments; q += step) xs[q] = x[q];
  __syncthreads();
}

__device__ __forceinline__ float silu(float g) {
  return g / (1.0f + expf(-g));
}

// Shared memory for an input of C values (all segments together): floats, or for Q4/Q8 the codes
// and two floats per block of 32.
inline size_t gemv_smem_bytes(DType dt, int64_t C) {
  const bool quant = dt == DType::kQ4 || dt == DType::kQ8;
  return quant ? size_t(C) + size_t(C / 32) * 8 : (size_t(C) * 4 + 15) / 16 * 16;
}

}  // namespace cs::cuda
