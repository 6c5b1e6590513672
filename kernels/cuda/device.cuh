// Device-side helpers shared by the CUDA kernels: fp16/bf16 loads, warp reductions, generic
// weight reads. Included by .cu files only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

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
inline bool pdl_supported() {
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
