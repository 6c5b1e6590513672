// Read-rate probe (`coldstream bench --kernels read-probe`): how fast the card reads a buffer
// with a given amount of memory-level parallelism, to tell what the decode kernels' loads can
// reach (docs/PERF.md, session 23). Two ways in:
// - plain 16-byte loads (LDG), `loads` independent ones per thread in flight, on a grid of
//   blocks x warps: the decode GEMVs' shape is 3 blocks of 4 warps per SM, 16 loads per thread;
// - bulk copies into shared memory (the Tensor Memory Accelerator, cp.async.bulk, sm_90): one
//   thread per block keeps `stages` chunks in flight, the others only touch the data.
// The data is folded into a value that is stored only if it matches a constant, so no load can
// be dropped.
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/mma.cuh"

namespace cs::cuda {
namespace {

constexpr unsigned kMagic = 0x9e3779b9u;

template <int kLoads>
__global__ void read_ldg_kernel(const uint4* src, size_t n, unsigned* sink) {
  unsigned acc = 0;
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  for (size_t base = size_t(blockIdx.x) * blockDim.x + threadIdx.x; base < n;
       base += stride * kLoads) {
    uint4 v[kLoads];
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const size_t i = base + u * stride;
      v[u] = i < n ? __ldcs(src + i) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kLoads; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  if (acc == kMagic) *sink = acc;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ void mbar_init(uint32_t bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect(uint32_t bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ bool mbar_try_wait(uint32_t bar, unsigned phase) {
  uint32_t ok = 0;
  asm volatile(
      "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
      " selp.u32 %0, 1, 0, p;\n}\n"
      : "=r"(ok)
      : "r"(bar), "r"(phase)
      : "memory");
  return ok != 0;
}
// `bytes` (a multiple of 16, both ends 16-byte aligned) global -> shared, completing on `bar`.
__device__ __forceinline__ void bulk_copy(uint32_t dst, const void* src, unsigned bytes,
                                          uint32_t bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::
          "r"(dst),
      "l"(src), "r"(bytes), "r"(bar)
      : "memory");
}
#endif

constexpr int kMaxStages = 16;

// Block b reads bytes [b * per, (b + 1) * per) in chunks of `chunk` through `stages` buffers.
__global__ void read_tma_kernel(const char* src, size_t bytes, int stages, int chunk,
                                unsigned* sink) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ float4 smem4[];
  char* const buf = reinterpret_cast<char*>(smem4);
  __shared__ alignas(8) uint64_t bars[kMaxStages];
  const size_t per = (bytes / gridDim.x + 15) / 16 * 16;
  const size_t begin = min(bytes, size_t(blockIdx.x) * per), end = min(bytes, begin + per);
  const int n = int((end - begin + chunk - 1) / chunk);
  if (threadIdx.x == 0) {
    for (int s = 0; s < stages; ++s) mbar_init(smem_u32(&bars[s]), 1);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  auto issue = [&](int k) {
    const int s = k % stages;
    const size_t off = begin + size_t(k) * chunk;
    const unsigned len = unsigned(min(size_t(chunk), end - off));
    mbar_expect(smem_u32(&bars[s]), len);
    bulk_copy(smem_u32(buf + size_t(s) * chunk), src + off, len, smem_u32(&bars[s]));
  };
  if (threadIdx.x == 0)
    for (int k = 0; k < min(stages, n); ++k) issue(k);
  unsigned acc = 0;
  for (int k = 0; k < n; ++k) {
    const int s = k % stages;
    while (!mbar_try_wait(smem_u32(&bars[s]), unsigned(k / stages) & 1u)) {
    }
    acc ^= reinterpret_cast<const unsigned*>(buf + size_t(s) * chunk)[threadIdx.x % (chunk / 4)];
    __syncthreads();  // every thread is done with the stage before it is refilled
    if (threadIdx.x == 0 && k + stages < n) {
      asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
      issue(k + stages);
    }
  }
  if (acc == kMagic) *sink = acc;
#endif
}

}  // namespace

cudaError_t read_probe_ldg(const void* src, size_t bytes, int blocks, int warps, int loads,
                           unsigned* sink, cudaStream_t s) {
  const auto kernel = loads == 1    ? read_ldg_kernel<1>
                      : loads == 4  ? read_ldg_kernel<4>
                      : loads == 16 ? read_ldg_kernel<16>
                                    : nullptr;
  if (!kernel) return cudaErrorInvalidValue;
  check_launch(launch_kernel(kernel, unsigned(blocks), unsigned(warps * kWarp), 0, s,
                             static_cast<const uint4*>(src), bytes / 16, sink));
  return cudaSuccess;
}

cudaError_t read_probe_tma_init() {
  const void* f = reinterpret_cast<const void*>(read_tma_kernel);
  int dev = 0, major = 0, optin = 0;
  cudaFuncAttributes attr{};
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  if (e == cudaSuccess)
    e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (e == cudaSuccess) e = cudaFuncGetAttributes(&attr, f);
  if (e != cudaSuccess) return e;
  if (major < 9) return cudaErrorNotSupported;
  // The dynamic limit is the opt-in total less the kernel's static barriers.
  return cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              optin - int(attr.sharedSizeBytes));
}

cudaError_t read_probe_tma(const void* src, size_t bytes, int blocks, int stages, int chunk,
                           unsigned* sink, cudaStream_t s) {
  if (stages < 1 || stages > kMaxStages || chunk % 16 || bytes % 16) return cudaErrorInvalidValue;
  check_launch(launch_kernel(read_tma_kernel, unsigned(blocks), 128u, size_t(stages) * chunk, s,
                             static_cast<const char*>(src), bytes, stages, chunk, sink));
  return cudaSuccess;
}

}  // namespace cs::cuda
