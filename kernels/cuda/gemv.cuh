// Device code shared by the GEMV kernels (gemv.cu, moe_down.cu): the per-chunk dot products.
//
// Every weight row is read in 16-byte chunks (4 F32, 8 F16/BF16, 16 Q8 or 32 Q4 weights); a lane
// multiplies one chunk with the matching input values held in shared memory. Lane l of a warp
// takes chunk base + l, so the input is staged chunk-interleaved: float4 k of chunk c sits at
// xs4[k * n_chunks + c], and the 32 lanes' loads of one float4 index are consecutive (no bank
// conflicts). Each lane loads its chunk's inputs once and uses them for every row it computes.
//
// Q4 without a lookup table: a code q (0..15) placed by one byte permute into the mantissa of a
// float with exponent 1 gives exactly 2 + q/64. A chunk's raw sum a = sum (2 + q/64) x then gives
// sum q x = 64 a - 128 sx, with sx = sum x over the chunk (staged once per block), so a weight
// costs one permute and one FMA; the -8 offset (symmetric) or the min (asymmetric) is applied
// per chunk through sx (chunk_value).
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

// Dot product of one 16-byte chunk with the matching x values (registers, float4_per_chunk of
// them). For Q4 this is the raw sum a = sum (2 + q/64) x; for Q8 the unscaled sum q x.
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
  } else if constexpr (DT == DType::kF16) {
#pragma unroll
    for (int k = 0; k < 4; k += 2) {
      const float2 a = __half22float2(*reinterpret_cast<const __half2*>(&v[k]));
      const float2 b = __half22float2(*reinterpret_cast<const __half2*>(&v[k + 1]));
      s += dot4(a.x, a.y, b.x, b.y, x4[k / 2]);
    }
  } else if constexpr (DT == DType::kQ8) {
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int u = int(v[k]);
      s += dot4(float((u << 24) >> 24), float((u << 16) >> 24), float((u << 8) >> 24),
                float(u >> 24), x4[k]);
    }
  } else {  // Q4: byte j of the chunk holds weight j (low nibble) and j + 16 (high nibble)
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const uint32_t lo = v[k] & 0x0f0f0f0fu, hi = (v[k] >> 4) & 0x0f0f0f0fu;
      const float4 xl = x4[k], xh = x4[4 + k];
      s += __uint_as_float(__byte_perm(lo, 0x40000000u, 0x7044)) * xl.x;
      s += __uint_as_float(__byte_perm(lo, 0x40000000u, 0x7144)) * xl.y;
      s += __uint_as_float(__byte_perm(lo, 0x40000000u, 0x7244)) * xl.z;
      s += __uint_as_float(__byte_perm(lo, 0x40000000u, 0x7344)) * xl.w;
      s += __uint_as_float(__byte_perm(hi, 0x40000000u, 0x7044)) * xh.x;
      s += __uint_as_float(__byte_perm(hi, 0x40000000u, 0x7144)) * xh.y;
      s += __uint_as_float(__byte_perm(hi, 0x40000000u, 0x7244)) * xh.z;
      s += __uint_as_float(__byte_perm(hi, 0x40000000u, 0x7344)) * xh.w;
    }
  }
  return s;
}

// A weight matrix prepared for chunked reads: data, and for Q4/Q8 scales (and mins), with the
// row strides and the shift from a chunk index to its scale index (chunks per group is a power
// of two, see gemv_vec_ok). Built once per matrix, so a chunk's address is one multiply-add.
struct MatRef {
  const uint8_t* w = nullptr;
  const uint16_t* s = nullptr;
  const uint16_t* m = nullptr;
  int64_t rb = 0;  // bytes per row
  int gpr = 0;     // scales per row
  int gsh = 0;     // chunk index >> gsh = group index
};

template <DType DT>
__device__ __forceinline__ MatRef mat_ref(const MatView& v) {
  MatRef r;
  r.w = static_cast<const uint8_t*>(v.data);
  r.rb = row_bytes<DT>(v.cols);
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
  return __ldcs(reinterpret_cast<const uint4*>(r.w + row * r.rb) + c);
}

// The chunk's group scale (low 16 bits) and min (high 16 bits, Q4 asymmetric) as packed fp16.
template <DType DT>
__device__ __forceinline__ uint32_t load_dm(const MatRef& r, int row, int c) {
  if constexpr (!is_quant<DT>()) {
    return 0;
  } else {
    const int64_t g = int64_t(row) * r.gpr + (c >> r.gsh);
    uint32_t dm = __ldcs(r.s + g);
    if (DT == DType::kQ4 && r.m) dm |= uint32_t(__ldcs(r.m + g)) << 16;
    return dm;
  }
}

// The contribution of a chunk (bits w, packed scale/min dm): x4 holds the chunk's inputs, sxc
// their sum (Q4 only).
template <DType DT>
__device__ __forceinline__ float chunk_value(uint4 w, uint32_t dm, const float4* x4, float sxc,
                                             bool asymmetric) {
  const float s = chunk_dot<DT>(w, x4);
  if constexpr (DT == DType::kQ4) {
    const float d = f16(uint16_t(dm & 0xffffu));
    return asymmetric ? d * (64.0f * s - 128.0f * sxc) + f16(uint16_t(dm >> 16)) * sxc
                      : d * (64.0f * s - 136.0f * sxc);
  } else if constexpr (DT == DType::kQ8) {
    return f16(uint16_t(dm & 0xffffu)) * s;
  } else {
    return s;
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

// Stages `segments` consecutive input vectors of C values each (one per expert in moe_down, else
// one) in shared memory: chunk-interleaved per segment when `vec` (see above), in plain order
// otherwise. For Q4 also the sum of each 32-value chunk (sx, in chunk order). A thread takes a
// whole chunk: it loads the chunk's float4s together, writes float4 k to xs4[k * nch + c] (the
// threads of a warp write consecutive float4s: no bank conflicts) and sums the chunk in
// registers, so staging costs one L2 round trip per chunk a thread owns and no index division
// per element. Ends with a barrier.
template <DType DT>
__device__ __forceinline__ void stage_input(const float* x, int C, int segments, bool vec,
                                            float* xs, float* sx) {
  constexpr int WPC = weights_per_chunk<DT>(), F4 = float4_per_chunk<DT>();
  const int step = blockDim.x;
  if (vec && C % WPC == 0 && C >= WPC) {
    const int nch = C / WPC, total = nch * segments;
    float4* xs4 = reinterpret_cast<float4*>(xs);
    const bool aligned = reinterpret_cast<uintptr_t>(x) % 16 == 0;
    for (int i = threadIdx.x; i < total; i += step) {
      const int seg = i / nch, c = i - seg * nch;
      const float* src = x + int64_t(seg) * C + int64_t(c) * WPC;
      float4 v[F4];
#pragma unroll
      for (int k = 0; k < F4; ++k)
        v[k] = aligned ? reinterpret_cast<const float4*>(src)[k]
                       : make_float4(src[4 * k], src[4 * k + 1], src[4 * k + 2], src[4 * k + 3]);
      float4* dst = xs4 + seg * (C / 4) + c;
      float sum = 0.0f;
#pragma unroll
      for (int k = 0; k < F4; ++k) {
        dst[k * nch] = v[k];
        sum += (v[k].x + v[k].y) + (v[k].z + v[k].w);
      }
      if constexpr (DT == DType::kQ4) sx[i] = sum;
    }
    __syncthreads();
    return;
  }
  for (int q = threadIdx.x; q < C * segments; q += step) xs[q] = x[q];
  __syncthreads();
}

// The float4s of chunk c of a staged segment (xs4 at the segment's start, nch chunks).
template <DType DT>
__device__ __forceinline__ void load_inputs(const float4* xs4, int nch, int c,
                                            float4 (&x)[float4_per_chunk<DT>()]) {
#pragma unroll
  for (int k = 0; k < float4_per_chunk<DT>(); ++k) x[k] = xs4[k * nch + c];
}

__device__ __forceinline__ float silu(float g) {
  return g / (1.0f + expf(-g));
}

// Shared memory for an input of C floats (and its Q4 chunk sums), rounded to 16 bytes.
inline size_t gemv_smem_bytes(DType dt, int64_t C) {
  return (size_t(C) * 4 + (dt == DType::kQ4 ? size_t(C / 32) * 4 : 0) + 15) / 16 * 16;
}

}  // namespace cs::cuda
