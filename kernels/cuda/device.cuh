// Device-side helpers shared by the CUDA kernels: fp16/bf16 loads, warp reductions, generic
// weight reads. Included by .cu files only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "kernels/types.h"

namespace cs::cuda {

inline constexpr int kWarp = 32;

// Programmatic dependent launch (sm_90): every kernel here is launched so that it may start while
// its predecessor finishes. Each kernel calls pdl_wait() before it reads anything an earlier kernel
// wrote (constant weights may be read before), then pdl_trigger() to let its successor start. As
// a kernel triggers only after its own wait, data written two kernels back is complete when a
// kernel starts. Both are no-ops before sm_90 and for kernels launched without the attribute.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Whether the current device takes programmatic dependent launches (compute capability 9+).
// CS_CUDA_PDL=0 in the environment turns them off (to time an sm_90 card as an sm_89 one runs).
inline bool pdl_supported() {
  static const bool off = [] {
    const char* e = std::getenv("CS_CUDA_PDL");
    return e && std::string_view(e) == "0";
  }();
  if (off) return false;
  thread_local int device = -1, major = 0;
  int d = 0;
  if (cudaGetDevice(&d) != cudaSuccess) return false;
  if (d != device) {
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, d) != cudaSuccess)
      major = 0;
    device = d;
  }
  return major >= 9;
}

// Returns the error of a launch from the enclosing launcher.
#define check_launch(expr)                                  \
  do {                                                      \
    const cudaError_t launch_error_ = (expr);               \
    if (launch_error_ != cudaSuccess) return launch_error_; \
  } while (0)

// Launches `kernel` with programmatic stream serialization where the device supports it.
template <typename... KArgs, typename... Args>
inline cudaError_t launch_kernel(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                                 cudaStream_t s, Args... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cfg.attrs = attr;
  cfg.numAttrs = pdl_supported() ? 1 : 0;
  const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...);
  return e != cudaSuccess ? e : cudaGetLastError();
}

__device__ __forceinline__ float f16(uint16_t h) {
  return __half2float(__ushort_as_half(h));
}
__device__ __forceinline__ float bf16(uint16_t h) {
  return __uint_as_float(uint32_t(h) << 16);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// (value, index) ordered by value, then by lower index: the CPU reference's order for top-k and
// argmax.
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
  return v > bv || (v == bv && i < bi);
}
// The best (value, index) of the warp, in every lane.
__device__ __forceinline__ void warp_best(float& v, int& i) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (better(ov, oi, v, i)) v = ov, i = oi;
  }
}

// Sum over a block of `blockDim.x` threads (a multiple of 32, at most 1024). `red` is shared
// scratch of 32 floats. Every thread gets the result.
__device__ __forceinline__ float block_sum(float v, float* red) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  v = warp_sum(v);
  __syncthreads();  // `red` may still be read by a previous call
  if (lane == 0) red[warp] = v;
  __syncthreads();
  const int n = blockDim.x / kWarp;
  v = lane < n ? red[lane] : 0.0f;
  return warp_sum(v);
}

// Rotate-half RoPE of the pair (a, b), head dims (j, j + D/2), at `position` with frequency f,
// scaled by attn_factor (YaRN); in place.
__device__ __forceinline__ void rope_rotate(float& a, float& b, float f, int position,
                                            float attn_factor) {
  float sn, cs;
  sincosf(float(position) * f, &sn, &cs);
  cs *= attn_factor;
  sn *= attn_factor;
  const float ra = a * cs - b * sn, rb = b * cs + a * sn;
  a = ra;
  b = rb;
}

// Rotation pairs a lane holds in registers: heads of up to 2 x kRopePer x 32 dims.
inline constexpr int kRopePer = 4;

// The calling lane's pairs of a head of D dims, (a[u], b[u]) = x (j, j + D/2), and when v is not
// null the same pairs of v (else zeros); lanes past D/2 repeat the last pair.
__device__ __forceinline__ void load_head_pairs(const float* x, const float* v, int D,
                                                float (&a)[kRopePer], float (&b)[kRopePer],
                                                float (&va)[kRopePer], float (&vb)[kRopePer]) {
  const int lane = threadIdx.x % kWarp, half = D / 2;
#pragma unroll
  for (int u = 0; u < kRopePer; ++u) {
    const int j = min(lane + u * kWarp, half - 1);
    a[u] = x[j];
    b[u] = x[j + half];
    va[u] = v ? v[j] : 0.0f;
    vb[u] = v ? v[j + half] : 0.0f;
  }
}

// One warp's head of D dims held as pairs (a[u], b[u]) = dims (j, j + D/2), j = lane + 32u < D/2:
// its RMSNorm with weights (na[u], nb[u]) when `norm`, then RoPE with frequencies fr[u], in place.
// The q/k prologue of qk_norm_rope_store and of the fused decode attention, so both give the same
// bits.
__device__ __forceinline__ void norm_rope_regs(float (&a)[kRopePer], float (&b)[kRopePer],
                                               const float (&na)[kRopePer],
                                               const float (&nb)[kRopePer],
                                               const float (&fr)[kRopePer], bool norm, int D,
                                               float eps, int position, float attn_factor) {
  const int lane = threadIdx.x % kWarp, half = D / 2;
  float inv = 1.0f;
  if (norm) {
    float ss = 0.0f;
#pragma unroll
    for (int u = 0; u < kRopePer; ++u) ss += lane + u * kWarp < half ? a[u] * a[u] : 0.0f;
#pragma unroll
    for (int u = 0; u < kRopePer; ++u) ss += lane + u * kWarp < half ? b[u] * b[u] : 0.0f;
    ss = warp_sum(ss);
    inv = 1.0f / sqrtf(ss / float(D) + eps);
  }
#pragma unroll
  for (int u = 0; u < kRopePer; ++u) {
    if (lane + u * kWarp >= half) break;
    if (norm) {
      a[u] = (a[u] * inv) * na[u];
      b[u] = (b[u] * inv) * nb[u];
    }
    rope_rotate(a[u], b[u], fr[u], position, attn_factor);
  }
}

// Element (r, c) of any weight view as a float (slow path: embeddings, norm weights).
__device__ __forceinline__ float load_weight(const MatView& w, int64_t r, int64_t c) {
  switch (w.dtype) {
    case DType::kF32:
      return static_cast<const float*>(w.data)[r * w.cols + c];
    case DType::kF16:
      return f16(static_cast<const uint16_t*>(w.data)[r * w.cols + c]);
    case DType::kBF16:
      return bf16(static_cast<const uint16_t*>(w.data)[r * w.cols + c]);
    case DType::kQ8: {
      const int8_t q = static_cast<const int8_t*>(w.data)[r * w.cols + c];
      return f16(w.scales[r * (w.cols / w.group) + c / w.group]) * float(q);
    }
    case DType::kQ4: {
      const uint8_t byte =
          static_cast<const uint8_t*>(w.data)[r * (w.cols / 2) + (c / 32) * 16 + (c % 16)];
      const int q = (c % 32) < 16 ? (byte & 15) : (byte >> 4);
      const int64_t g = r * (w.cols / w.group) + c / w.group;
      const float d = f16(w.scales[g]);
      return w.mins ? d * float(q) + f16(w.mins[g]) : d * float(q - 8);
    }
  }
  return 0.0f;
}

// The constant inputs of norm_rope_regs for the calling lane: norm weights (1 when norm is empty)
// and frequencies; lanes past D/2 repeat the last pair. Loaded before a kernel's wait.
__device__ __forceinline__ void norm_rope_consts(const MatView& norm, const float* inv_freq, int D,
                                                 float (&na)[kRopePer], float (&nb)[kRopePer],
                                                 float (&fr)[kRopePer]) {
  const int lane = threadIdx.x % kWarp, half = D / 2;
#pragma unroll
  for (int u = 0; u < kRopePer; ++u) {
    const int j = min(lane + u * kWarp, half - 1);
    fr[u] = inv_freq[j];
    na[u] = norm.data ? load_weight(norm, 0, j) : 1.0f;
    nb[u] = norm.data ? load_weight(norm, 0, j + half) : 1.0f;
  }
}

// Stores v into element i of a F32, F16 or BF16 array.
__device__ __forceinline__ void store_act(void* p, DType t, int64_t i, float v) {
  if (t == DType::kF16)
    static_cast<__half*>(p)[i] = __float2half_rn(v);
  else if (t == DType::kBF16)
    static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
  else
    static_cast<float*>(p)[i] = v;
}
__device__ __forceinline__ float load_act(const void* p, DType t, int64_t i) {
  if (t == DType::kF16) return f16(static_cast<const uint16_t*>(p)[i]);
  if (t == DType::kBF16) return bf16(static_cast<const uint16_t*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

}  // namespace cs::cuda
