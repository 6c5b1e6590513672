// The CUDA backend (kernels/cuda/) as seen from code that must also build without CUDA: the
// factory, device discovery and the GPU micro-benchmarks of `coldstream bench`. In a build without
// the CUDA backend every function here exists and reports that it is missing.
//
// Thread-safety: the functions are thread-safe; a backend is used by one thread at a time.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.h"

namespace cs {

struct CudaBackendOptions {
  int device = 0;
  // Bytes the backend may allocate in all (weights, KV cache, scratch); 0 = no limit but the
  // card's. alloc() beyond it throws cs::Error(kOutOfMemory) naming the request and the budget.
  size_t vram_budget = 0;
  // Synchronize after every op, so a fault inside a kernel is reported with that op's name
  // (slow; for debugging). Without it an asynchronous fault surfaces at the next sync point.
  bool check_each_op = false;
  // Programmatic dependent launch on sm_90 is not used yet; CUDA graphs are.
  bool graphs = true;
  // MoE with at least this many tokens uses the grouped INT4 GEMM (Q4 experts), fewer the GEMV.
  int moe_grouped_min_tokens = 32;
  // Dense matmul with at least this many rows uses cuBLAS (F16/BF16/F32 weights, Q8/Q4 after
  // dequantizing to BF16), fewer the GEMV kernels.
  int gemm_min_tokens = 8;
};

// Throws cs::Error(kDevice) when the build has no CUDA backend, no GPU is present or the device
// cannot be used, saying which.
std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options);
std::unique_ptr<Backend> make_cuda_backend(int device = 0);

// Whether this binary was built with the CUDA backend.
bool cuda_backend_built();
// Number of usable CUDA GPUs: 0 without the CUDA backend, a driver or a GPU. Never throws.
// When 0, *reason (if given) says why.
int cuda_device_count(std::string* reason = nullptr);

struct CudaDeviceInfo {
  std::string name;
  int cc_major = 0, cc_minor = 0, sm_count = 0;
  size_t total_memory = 0, free_memory = 0, l2_bytes = 0;
};
CudaDeviceInfo cuda_device_info(int device);

// ---- micro-benchmarks (CUDA events, median of `reps` runs after warm-up) ----
struct KernelTiming {
  std::string name;
  double ms = 0;     // median time of one run
  double bytes = 0;  // bytes the run must move through device memory (read + write)
  double flops = 0;  // floating-point operations of one run (0 when memory-bound)
  double gbps() const { return ms > 0 ? bytes / ms / 1e6 : 0; }
  double tflops() const { return ms > 0 ? flops / ms / 1e9 : 0; }
  double max_rel_err = 0;  // against a reference where the benchmark checks one
};

// Device-to-device copy rate (bytes read + written), cudaMemcpy and a plain copy kernel.
std::vector<KernelTiming> cuda_bench_copy(int device, size_t bytes, int reps);

// INT4 decode GEMV of one MoE layer: T = 1, K experts of gate/up [I][H] and down [H][I], Q4
// symmetric with `group`. Weights are rotated over enough layers to exceed the L2 cache.
// Returns the fused kernels' timing and each half separately.
std::vector<KernelTiming> cuda_bench_moe_decode(int device, int hidden, int inter, int k, int group,
                                                int reps);

// Decode GEMV (T = 1) of one N x C matrix of dtype BF16 or Q4 (group 32), weights rotated over
// copies that exceed the L2 cache: on a stream and in a CUDA graph, checked against the CPU.
std::vector<KernelTiming> cuda_bench_gemv(int device, DType dt, int N, int C, int reps);

// Prefill of one MoE layer's experts for T tokens routed uniformly at random to K of E experts:
// the grouped INT4 GEMM, the GEMV path, dequantize + cuBLAS BF16, and cuBLAS BF16 alone on
// already-BF16 weights (the dense reference of the same work).
std::vector<KernelTiming> cuda_bench_moe_prefill(int device, int tokens, int hidden, int inter,
                                                 int n_experts, int k, int group, int reps);

// Read rate of `bytes` (windows rotated past the L2 cache) at several amounts of memory-level
// parallelism: plain 16-byte loads over grids of blocks x warps x loads in flight per thread,
// and bulk copies into shared memory (sm_90). Bytes are reads only.
std::vector<KernelTiming> cuda_bench_read(int device, size_t bytes, int reps);

// cuBLAS BF16 GEMM time of out[T][N] = x[T][C] W^T (the dense reference for prefill).
KernelTiming cuda_bench_gemm_bf16(int device, int T, int N, int C, int reps);

}  // namespace cs
