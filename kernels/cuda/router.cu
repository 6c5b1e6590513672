// The MoE router on the GPU: softmax over E experts in fp32, top-k (ties to the lower index),
// optionally renormalised, following the CPU reference exactly (kernels/cpu/moe.cpp). Two forms:
// router() selects from logits another op wrote; route_fused() computes the logits too, for
// decode, where the router's product (E rows, a few MB at most) and the selection are each far
// too small to fill the GPU and each launch cost as much as its work (docs/CUDA.md, "Router").
#include <algorithm>

#include "kernels/cuda/gemv.cuh"
#include "kernels/cuda/launch.h"

namespace cs::cuda {
namespace {

// The selection of one token by one warp. `p` holds the token's E logits in shared memory and is
// overwritten with their probabilities. Picks go in the reference's order (probability, then the
// lower index): each lane keeps the best of its own experts, the warp takes the best of those, and
// only the lane that owned the pick marks it taken (-1) and rescans its experts.
__device__ void route_token(float* p, int E, int k, bool renormalize, int32_t* ids,
                            float* weights) {
  const int lane = threadIdx.x % kWarp;
  float mx = -INFINITY;
  for (int e = lane; e < E; e += kWarp) mx = fmaxf(mx, p[e]);
  mx = warp_max(mx);
  float sum = 0.0f;
  for (int e = lane; e < E; e += kWarp) sum += expf(p[e] - mx);
  sum = warp_sum(sum);
  float bv = -INFINITY;
  int bi = 0x7fffffff;
  for (int e = lane; e < E; e += kWarp) {
    const float q = expf(p[e] - mx) / sum;
    p[e] = q;
    if (better(q, e, bv, bi)) bv = q, bi = e;
  }
  float kept = 0.0f;
  for (int j = 0; j < k; ++j) {
    float v = bv;
    int i = bi;
    warp_best(v, i);
    kept += v;
    if (lane == 0) {  // no candidate left (NaN logits): a valid id, a NaN weight (as the CPU)
      ids[j] = i < E ? i : j % E;
      weights[j] = i < E ? v : NAN;
    }
    if (i < E && i % kWarp == lane) {  // i = 0x7fffffff: no candidate left
      p[i] = -1.0f;
      bv = -INFINITY;
      bi = 0x7fffffff;
      for (int e = lane; e < E; e += kWarp)
        if (p[e] >= 0.0f && better(p[e], e, bv, bi)) bv = p[e], bi = e;
    }
  }
  __syncwarp();
  if (renormalize && lane < k) weights[lane] /= kept;
}

constexpr int kRouterSmem = 48 * 1024;  // the standalone router's shared memory: E floats per warp

// One warp per token, its logits copied to shared memory.
__global__ void router_kernel(const float* logits, int T, int E, int k, bool renormalize,
                              int32_t* ids, float* weights) {
  pdl_wait();
  pdl_trigger();
  extern __shared__ float probs[];
  const int t = blockIdx.x * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  if (t >= T) return;
  float* p = probs + (threadIdx.x / kWarp) * E;
  for (int e = threadIdx.x % kWarp; e < E; e += kWarp) p[e] = logits[int64_t(t) * E + e];
  __syncwarp();
  route_token(p, E, k, renormalize, ids + int64_t(t) * k, weights + int64_t(t) * k);
}

constexpr int kRouteThreads = 128;
constexpr int kRouteBatch = 4;  // 16-byte weight chunks per thread loaded before any is used
constexpr int kRouteMaxT = 4;
constexpr int kRouteMaxLogits = 4096;  // T x E of the fused form: the last block's shared memory

struct RouteParams {
  MatView w;       // [E][C], F32, F16 or BF16
  const float* x;  // [T][C]
  int T, E, C, k;
  bool renormalize;
  float* logits;      // [T][E]
  int32_t* ids;       // [T][k]
  float* weights;     // [T][k]
  unsigned* counter;  // zero before and after the launch
};

// Block (e, t) computes logit e of token t with all its threads (the router has too few rows to
// give each warp its own and still fill the GPU). The last block to finish, known by its ticket
// from `counter` (which it resets), selects every token's experts from the logits.
template <DType DT>
__global__ void __launch_bounds__(kRouteThreads) route_kernel(RouteParams p) {
  constexpr int F4 = float4_per_chunk<DT>();
  __shared__ float red[32];
  __shared__ float logits[kRouteMaxLogits];
  __shared__ bool last;
  const int e = blockIdx.x, t = blockIdx.y;
  const int nch = p.C / weights_per_chunk<DT>();
  const uint4* wr = static_cast<const uint4*>(p.w.data) + int64_t(e) * nch;
  uint4 w[kRouteBatch];
  auto load = [&](int base) {
#pragma unroll
    for (int u = 0; u < kRouteBatch; ++u) {
      const int c = base + threadIdx.x + u * kRouteThreads;
      w[u] = c < nch ? __ldcs(wr + c) : make_uint4(0, 0, 0, 0);
    }
  };
  load(0);  // constant weights: before waiting for the input
  pdl_wait();
  pdl_trigger();
  const float4* x4 = reinterpret_cast<const float4*>(p.x + int64_t(t) * p.C);
  float acc = 0.0f;
  for (int base = 0; base < nch; base += kRouteBatch * kRouteThreads) {
    if (base > 0) load(base);
#pragma unroll
    for (int u = 0; u < kRouteBatch; ++u) {
      const int c = base + threadIdx.x + u * kRouteThreads;
      if (c < nch) acc += chunk_dot<DT>(w[u], x4 + int64_t(c) * F4);
    }
  }
  acc = block_sum(acc, red);
  if (threadIdx.x == 0) {
    p.logits[int64_t(t) * p.E + e] = acc;
    __threadfence();  // the logit is visible to the last block before this block's ticket counts
    last = atomicAdd(p.counter, 1u) == unsigned(gridDim.x * gridDim.y - 1);
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  const int n = p.T * p.E;
  for (int i = threadIdx.x; i < n; i += kRouteThreads) logits[i] = __ldcg(p.logits + i);
  __syncthreads();
  for (int tt = threadIdx.x / kWarp; tt < p.T; tt += kRouteThreads / kWarp)
    route_token(logits + tt * p.E, p.E, p.k, p.renormalize, p.ids + tt * p.k, p.weights + tt * p.k);
  if (threadIdx.x == 0) *p.counter = 0u;
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

}  // namespace

cudaError_t router(const float* logits, int T, int n_experts, int k, bool renormalize, int32_t* ids,
                   float* weights, cudaStream_t s) {
  if (k < 1 || k > 32 || k > n_experts) return cudaErrorInvalidValue;
  const int warps = std::min(4, kRouterSmem / (4 * n_experts));
  if (warps < 1) return cudaErrorInvalidValue;  // over 12288 experts
  if (T <= 0) return cudaSuccess;
  check_launch(launch_kernel(router_kernel, (T + warps - 1) / warps, warps * kWarp,
                             size_t(warps) * n_experts * 4, s, logits, T, n_experts, k, renormalize,
                             ids, weights));
  return cudaGetLastError();
}

bool route_fused_ok(const MatView& w, const float* x, int T, int k) {
  const int wpc = w.dtype == DType::kF32 ? 4 : 8;
  const bool float_dtype =
      w.dtype == DType::kF32 || w.dtype == DType::kF16 || w.dtype == DType::kBF16;
  return float_dtype && T >= 1 && T <= kRouteMaxT && w.rows >= 1 && w.rows * T <= kRouteMaxLogits &&
         k >= 1 && k <= 32 && k <= w.rows && w.cols > 0 && w.cols % wpc == 0 && aligned16(w.data) &&
         aligned16(x);
}

cudaError_t route_fused(const float* x, int T, const MatView& w, int k, bool renormalize,
                        float* logits, int32_t* ids, float* weights, unsigned* counter,
                        cudaStream_t s) {
  if (!route_fused_ok(w, x, T, k)) return cudaErrorInvalidValue;
  RouteParams p{w, x, T, int(w.rows), int(w.cols), k, renormalize, logits, ids, weights, counter};
  const dim3 grid(unsigned(w.rows), unsigned(T));
  switch (w.dtype) {
    case DType::kF32:
      check_launch(launch_kernel(route_kernel<DType::kF32>, grid, kRouteThreads, 0, s, p));
      break;
    case DType::kF16:
      check_launch(launch_kernel(route_kernel<DType::kF16>, grid, kRouteThreads, 0, s, p));
      break;
    default:
      check_launch(launch_kernel(route_kernel<DType::kBF16>, grid, kRouteThreads, 0, s, p));
      break;
  }
  return cudaGetLastError();
}

}  // namespace cs::cuda
