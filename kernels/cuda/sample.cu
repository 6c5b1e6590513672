// Token sampling on the GPU, following the CPU reference rule exactly, ties included
// (kernels/cpu/sample.cpp). The MoE router is in router.cu.
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/launch.h"

namespace cs::cuda {
namespace {

// ---- sampling with a temperature: one block of 1024 threads ----
constexpr int kThreads = 1024;
constexpr int kMaxCand = 1024;
constexpr int kUnroll = 8;  // logits loaded per thread before use

// Float bits mapped so that unsigned order is float order (-0 taken as +0).
__device__ __forceinline__ uint32_t order_key(float f) {
  if (f == 0.0f) f = 0.0f;
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// ---- greedy: many blocks, one argmax ----
constexpr int kGreedyThreads = 256;
constexpr int kGreedyPer = 8;  // logits per thread, loaded before use
constexpr int kGreedyBlock = kGreedyThreads * kGreedyPer;

// Each block finds the best (value, lowest index) of its kGreedyBlock logits and folds it into
// best[0] as order_key(value) << 32 | ~index with one atomicMax: the largest key is the largest
// value and, among equal values, the lowest index (the reference's first maximum). The last block
// (ticket from best[1]'s counter) writes the token and leaves both words at zero. NaN logits are
// skipped; all NaN gives token 0, as the reference's std::max_element does.
__global__ void __launch_bounds__(kGreedyThreads)
    greedy_kernel(const float* l, int V, unsigned long long* best, int32_t* token) {
  pdl_wait();
  pdl_trigger();
  __shared__ float sv[32];
  __shared__ int si[32];
  const int i0 = blockIdx.x * kGreedyBlock + threadIdx.x;
  float v[kGreedyPer];
#pragma unroll
  for (int u = 0; u < kGreedyPer; ++u) {
    const int i = i0 + u * kGreedyThreads;
    v[u] = i < V ? l[i] : -INFINITY;
  }
  float bv = -INFINITY;
  int bi = 0x7fffffff;
#pragma unroll
  for (int u = 0; u < kGreedyPer; ++u) {
    const int i = i0 + u * kGreedyThreads;
    if (i < V && better(v[u], i, bv, bi)) bv = v[u], bi = i;
  }
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  warp_best(bv, bi);
  if (lane == 0) sv[warp] = bv, si[warp] = bi;
  __syncthreads();
  if (threadIdx.x != 0) return;
  for (int w = 1; w < kGreedyThreads / kWarp; ++w)
    if (better(sv[w], si[w], bv, bi)) bv = sv[w], bi = si[w];
  if (bi < V)
    atomicMax(best, (static_cast<unsigned long long>(order_key(bv)) << 32) |
                        (0xffffffffu - static_cast<uint32_t>(bi)));
  __threadfence();
  auto* counter = reinterpret_cast<unsigned*>(best + 1);
  if (atomicAdd(counter, 1u) != gridDim.x - 1) return;
  __threadfence();
  const unsigned long long key = atomicExch(best, 0ull);
  *token = key ? int32_t(0xffffffffu - static_cast<uint32_t>(key)) : 0;
  atomicExch(counter, 0u);
}

__global__ void __launch_bounds__(kThreads)
    sample_kernel(const float* l, int V, SampleArgs a, const float* u, int32_t* token) {
  pdl_wait();
  pdl_trigger();
  __shared__ uint32_t hist[256];
  __shared__ uint32_t s_prefix, s_remaining, s_count, s_eq;
  __shared__ unsigned long long cand[kMaxCand];
  __shared__ double prob[kMaxCand];
  const int tid = threadIdx.x;
  const int k = min(a.top_k, V);
  // Radix select, 8 bits at a time from the top: the key of the k-th largest logit.
  if (tid == 0) s_prefix = 0, s_remaining = uint32_t(k);
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = tid; b < 256; b += kThreads) hist[b] = 0;
    __syncthreads();
    const uint32_t prefix = s_prefix;
    const uint32_t mask = shift == 24 ? 0u : (0xffffffffu << (shift + 8));
    for (int base = tid; base < V; base += kUnroll * kThreads) {
      float v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int i = base + u * kThreads;
        v[u] = i < V ? l[i] : 0.0f;
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const uint32_t key = order_key(v[u]);
        if (base + u * kThreads < V && (key & mask) == prefix)
          atomicAdd(&hist[(key >> shift) & 255u], 1u);
      }
    }
    __syncthreads();
    if (tid == 0) {
      uint32_t rem = s_remaining, above = 0;
      int d = 255;
      for (; d > 0; --d) {
        if (above + hist[d] >= rem) break;
        above += hist[d];
      }
      s_prefix = prefix | (uint32_t(d) << shift);
      s_remaining = rem - above;
      s_eq = hist[d];
    }
    __syncthreads();
  }
  const uint32_t tau = s_prefix, need_eq = s_remaining, n_eq = s_eq;
  if (tid == 0) s_count = 0;
  __syncthreads();
  // Candidates: every key above tau, and the need_eq lowest indices among keys equal to it.
  for (int i = tid; i < V; i += kThreads) {
    const uint32_t key = order_key(l[i]);
    if (key > tau || (key == tau && n_eq == need_eq)) {
      const uint32_t slot = atomicAdd(&s_count, 1u);
      cand[slot] = (uint64_t(key) << 32) | uint32_t(0xffffffffu - uint32_t(i));
    }
  }
  __syncthreads();
  if (n_eq != need_eq) {  // ties at the cut: walk in index order (rare)
    uint32_t taken = 0;
    for (int base = 0; base < V && taken < need_eq; base += kThreads) {
      const int i = base + tid;
      const bool eq = i < V && order_key(l[i]) == tau;
      const unsigned ballot = __ballot_sync(0xffffffffu, eq);
      const int lane = tid % kWarp, warp = tid / kWarp;
      if (lane == 0) hist[warp] = __popc(ballot);
      __syncthreads();
      uint32_t before = 0;
      for (int w = 0; w < warp; ++w) before += hist[w];
      before += __popc(ballot & ((1u << lane) - 1u));
      if (eq && taken + before < need_eq) {
        const uint32_t slot = s_count + taken + before;
        cand[slot] = (uint64_t(tau) << 32) | uint32_t(0xffffffffu - uint32_t(i));
      }
      uint32_t total = 0;
      for (int w = 0; w < kThreads / kWarp; ++w) total += hist[w];
      __syncthreads();
      taken += total;
    }
    __syncthreads();
  }
  // Bitonic sort, descending: by logit, then by lower index.
  int n2 = 1;
  while (n2 < k) n2 <<= 1;
  for (int i = k + tid; i < n2; i += kThreads) cand[i] = 0;
  __syncthreads();
  for (int size = 2; size <= n2; size <<= 1)
    for (int stride = size / 2; stride > 0; stride >>= 1) {
      for (int i = tid; i < n2; i += kThreads) {
        const int j = i ^ stride;
        if (j > i) {
          const bool desc = (i & size) == 0;
          const unsigned long long x = cand[i], y = cand[j];
          if (desc ? x < y : x > y) cand[i] = y, cand[j] = x;
        }
      }
      __syncthreads();
    }
  // Probabilities in double, then the reference's sequential walk.
  const float l0 = l[0xffffffffu - uint32_t(cand[0])];
  for (int i = tid; i < k; i += kThreads) {
    const float li = l[0xffffffffu - uint32_t(cand[i])];
    prob[i] = exp((double(li) - double(l0)) / double(a.temperature));
  }
  __syncthreads();
  if (tid != 0) return;
  double sum = 0;
  for (int i = 0; i < k; ++i) sum += prob[i];
  for (int i = 0; i < k; ++i) prob[i] /= sum;
  int keep = k;
  if (a.min_p > 0)
    while (keep > 1 && prob[keep - 1] < double(a.min_p) * prob[0]) --keep;
  if (a.top_p < 1.0f) {
    double cum = 0;
    for (int i = 0; i < keep; ++i) {
      cum += prob[i];
      if (cum >= double(a.top_p)) {
        keep = i + 1;
        break;
      }
    }
  }
  double total = 0;
  for (int i = 0; i < keep; ++i) total += prob[i];
  double r = double(*u) * total;
  int pick = keep - 1;
  for (int i = 0; i < keep; ++i) {
    r -= prob[i];
    if (r <= 0) {
      pick = i;
      break;
    }
  }
  *token = int32_t(0xffffffffu - uint32_t(cand[pick]));
}

}  // namespace

bool sample_supported(const SampleArgs& a) {
  return a.greedy || a.temperature <= 0 || (a.top_k >= 1 && a.top_k <= kMaxCand);
}

cudaError_t sample(const float* logits, int V, const SampleArgs& a, const float* u, int32_t* token,
                   void* scratch, cudaStream_t s) {
  if (!sample_supported(a) || V <= 0) return cudaErrorInvalidValue;
  if (a.greedy || a.temperature <= 0) {
    check_launch(launch_kernel(greedy_kernel, unsigned((V + kGreedyBlock - 1) / kGreedyBlock),
                               kGreedyThreads, 0, s, logits, V,
                               static_cast<unsigned long long*>(scratch), token));
  } else {
    check_launch(launch_kernel(sample_kernel, 1, kThreads, 0, s, logits, V, a, u, token));
  }
  return cudaGetLastError();
}

}  // namespace cs::cuda
