// Random fills for benchmarks and tests (a counter-based hash, so any size fills in one pass).
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/launch.h"

namespace cs::cuda {
namespace {

__device__ __forceinline__ uint32_t hash(uint64_t i, uint64_t seed) {
  uint64_t z = i * 0x9e3779b97f4a7c15ull + seed;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return uint32_t((z ^ (z >> 31)) >> 16);
}

// Q4 codes 1..15 in both nibbles: zero-mean weights once 8 is subtracted.
__global__ void fill_q4_kernel(uint8_t* p, size_t n, uint64_t seed) {
  pdl_wait();
  pdl_trigger();
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    const uint32_t h = hash(i, seed);
    p[i] = uint8_t(1 + (h & 0xffff) % 15) | uint8_t((1 + (h >> 16) % 15) << 4);
  }
}

__global__ void fill_uniform_kernel(void* p, DType dt, size_t n, float lo, float hi,
                                    uint64_t seed) {
  pdl_wait();
  pdl_trigger();
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    const float u = float(hash(i, seed) & 0xffffff) * (1.0f / 16777216.0f);
    store_act(p, dt, int64_t(i), lo + (hi - lo) * u);
  }
}

}  // namespace

cudaError_t fill_q4_codes(void* p, size_t bytes, uint64_t seed, cudaStream_t s) {
  check_launch(
      launch_kernel(fill_q4_kernel, 1024, 256, 0, s, static_cast<uint8_t*>(p), bytes, seed));
  return cudaGetLastError();
}

cudaError_t fill_uniform(void* p, DType dt, size_t n, float lo, float hi, uint64_t seed,
                         cudaStream_t s) {
  check_launch(launch_kernel(fill_uniform_kernel, 1024, 256, 0, s, p, dt, n, lo, hi, seed));
  return cudaGetLastError();
}

}  // namespace cs::cuda
