// Split-K attention: each block takes one (query row, head) and one slice of the keys, with an
// online softmax per warp; a second kernel merges the slices. The decode path (T = 1, where the
// slices give the parallelism) and the fallback for any other shape.
//
// The key range is computed on the device from the position (AttentionArgs::pos), so a captured
// decode step replays with a fixed grid while the context grows: slice s of S covers
// [s * ceil(n/S), (s+1) * ceil(n/S)) of the n visible keys; empty slices report nothing.
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/launch.h"

namespace cs::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxD = 256;
constexpr int kMaxVec = kMaxD / (4 * kWarp);  // float4s of the head dims per lane
constexpr int kVBatch = 8;                    // value rows per batch of loads
// The workspace starts with one merge counter per (row, head), zero between launches; slices
// split only when rows x heads < 2 x SMs, so 4096 counters always suffice.
constexpr int kCounters = 4096;

struct AttnParams {
  const float* q;
  const void* k;
  const void* v;
  int T, pos0;
  const int32_t* pos;
  int Q, KV, D;
  float scale;
  float* out;
  float* ws;  // S > 1: kCounters ints, then [T][Q][S] records of (m, l, o[D])
};

// Four consecutive 16-bit cache values (8 bytes as stored) as floats; load4: any cache type.
__device__ __forceinline__ float4 to_float4(uint2 u, __half) {
  const float2 a = __half22float2(*reinterpret_cast<const __half2*>(&u.x));
  const float2 b = __half22float2(*reinterpret_cast<const __half2*>(&u.y));
  return make_float4(a.x, a.y, b.x, b.y);
}
__device__ __forceinline__ float4 to_float4(uint2 u, __nv_bfloat16) {
  return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u),
                     __uint_as_float(u.y << 16), __uint_as_float(u.y & 0xffff0000u));
}
template <typename KT>
__device__ __forceinline__ float4 load4(const KT* p) {
  if constexpr (sizeof(KT) == 4)
    return *reinterpret_cast<const float4*>(p);
  else
    return to_float4(*reinterpret_cast<const uint2*>(p), KT{});
}

// q . k for one key row. With the head dimension known at compile time (16-bit caches, kD = 128)
// every load of the row is issued before the first product: one round trip per key tile instead
// of one per 8 loads.
template <typename KT, int kD>
__device__ __forceinline__ float key_dot(const KT* kr, const float4* q4, int D) {
  float dot = 0.0f;
  if constexpr (kD > 0) {
    uint2 raw[kD / 4];
#pragma unroll
    for (int i = 0; i < kD / 4; ++i) raw[i] = reinterpret_cast<const uint2*>(kr)[i];
#pragma unroll
    for (int i = 0; i < kD / 4; ++i) {
      const float4 kv = to_float4(raw[i], KT{}), qv = q4[i];
      dot += kv.x * qv.x + kv.y * qv.y + kv.z * qv.z + kv.w * qv.w;
    }
  } else {
#pragma unroll 8
    for (int d = 0; d < D; d += 4) {
      const float4 kv = load4<KT>(kr + d), qv = q4[d / 4];
      dot += kv.x * qv.x + kv.y * qv.y + kv.z * qv.z + kv.w * qv.w;
    }
  }
  return dot;
}

__device__ __forceinline__ float4 scale4(float4 a, float s) {
  return make_float4(a.x * s, a.y * s, a.z * s, a.w * s);
}
__device__ __forceinline__ float4 fma4(float s, float4 v, float4 a) {
  return make_float4(fmaf(s, v.x, a.x), fmaf(s, v.y, a.y), fmaf(s, v.z, a.z), fmaf(s, v.w, a.w));
}

// Merges the S slice records of one (query row, head) into out (D values). Records written by
// other blocks are read through L2 (__ldcg): this block's L1 never held them.
__device__ void merge_slices(const float* recs, int S, int D, float* out) {
  float M = -INFINITY;
  for (int s = 0; s < S; ++s) M = fmaxf(M, __ldcg(recs + int64_t(s) * (D + 2)));
  float L = 0.0f;
  for (int s = 0; s < S; ++s) {
    const float ms = __ldcg(recs + int64_t(s) * (D + 2));
    if (ms != -INFINITY) L += __ldcg(recs + int64_t(s) * (D + 2) + 1) * expf(ms - M);
  }
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.0f;
    for (int s = 0; s < S; ++s) {
      const float ms = __ldcg(recs + int64_t(s) * (D + 2));
      if (ms != -INFINITY) o += __ldcg(recs + int64_t(s) * (D + 2) + 2 + d) * expf(ms - M);
    }
    out[d] = o / L;
  }
}

// kD: the head dimension when fixed at compile time (128, 16-bit caches), else 0.
template <typename KT, int kD>
__global__ void __launch_bounds__(kWarps* kWarp) attention_split_kernel(AttnParams p) {
  // float4s of head dims per lane, and value rows per batch of loads.
  constexpr int kVec = kD > 0 ? (kD + 4 * kWarp - 1) / (4 * kWarp) : kMaxVec;
  constexpr int kVB = kD > 0 ? 2 * kVBatch : kVBatch;
  pdl_wait();
  pdl_trigger();
  const int h = blockIdx.x, s = blockIdx.y, S = gridDim.y, t = blockIdx.z;
  const int D = kD > 0 ? kD : p.D, lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int n_keys = (p.pos ? *p.pos : p.pos0) + t + 1;
  const int chunk = (n_keys + S - 1) / S;
  const int k_begin = s * chunk, k_end = min(n_keys, k_begin + chunk);
  __shared__ float4 q4[kMaxD / 4];
  __shared__ float wm[kWarps], wl[kWarps];
  __shared__ __align__(16) float wo[kWarps][kMaxD];
  float* qs = reinterpret_cast<float*>(q4);
  const float* qrow = p.q + (int64_t(t) * p.Q + h) * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) qs[d] = qrow[d];
  __syncthreads();
  const int64_t kv_stride = int64_t(p.KV) * D;
  const int64_t kv_off = int64_t(h / (p.Q / p.KV)) * D;
  const KT* K = static_cast<const KT*>(p.k) + kv_off;
  const KT* V = static_cast<const KT*>(p.v) + kv_off;
  // Lane l accumulates head dims 4l + 128i .. 4l + 128i + 3 (8-byte loads of 16-bit values).
  float m = -INFINITY, l = 0.0f;
  float4 acc[kVec] = {};
  // The slice's keys split evenly over the warps (a slice of 33-96 keys is one tile per warp, not
  // two tiles of the first warps while the others idle); each warp walks its part in tiles of 32.
  const int per_warp = (k_end - k_begin + kWarps - 1) / kWarps;
  const int w_begin = k_begin + warp * per_warp, w_end = min(k_end, w_begin + per_warp);
  for (int kb = w_begin; kb < w_end; kb += kWarp) {
    const int key = kb + lane;
    float sc = -INFINITY;
    if (key < w_end) {
      sc = key_dot<KT, kD>(K + int64_t(key) * kv_stride, q4, D) * p.scale;
    }
    const float m_new = fmaxf(m, warp_max(sc));
    const float pr = key < w_end ? expf(sc - m_new) : 0.0f;
    const float corr = expf(m - m_new);  // 0 on the first tile (m = -inf)
    l = l * corr + warp_sum(pr);
#pragma unroll
    for (int i = 0; i < kVec; ++i) acc[i] = scale4(acc[i], corr);
    // The values of the tile's keys, kVB rows loaded before any is used (the loads of one row
    // alone left the warp waiting on each). Rows past the tile repeat its last row with weight 0.
    const int nv = min(kWarp, w_end - kb);
    for (int j0 = 0; j0 < nv; j0 += kVB) {
      float4 vv[kVB][kVec];
      float pj[kVB];
#pragma unroll
      for (int u = 0; u < kVB; ++u) {
        pj[u] = __shfl_sync(0xffffffffu, pr, j0 + u);  // 0 past the tile: those keys' pr is 0
        const KT* vr = V + int64_t(kb + min(j0 + u, nv - 1)) * kv_stride;
#pragma unroll
        for (int i = 0; i < kVec; ++i) {
          const int d = 4 * lane + 128 * i;
          vv[u][i] = d < D ? load4<KT>(vr + d) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
      }
#pragma unroll
      for (int u = 0; u < kVB; ++u)
#pragma unroll
        for (int i = 0; i < kVec; ++i) acc[i] = fma4(pj[u], vv[u][i], acc[i]);
    }
    m = m_new;
  }
  if (lane == 0) {
    wm[warp] = m;
    wl[warp] = l;
  }
#pragma unroll
  for (int i = 0; i < kVec; ++i) {
    const int d = 4 * lane + 128 * i;
    if (d < D) *reinterpret_cast<float4*>(&wo[warp][d]) = acc[i];
  }
  __syncthreads();
  float M = -INFINITY;
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, wm[w]);
  float L = 0.0f;
  for (int w = 0; w < kWarps; ++w)
    if (wm[w] != -INFINITY) L += wl[w] * expf(wm[w] - M);
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.0f;
    for (int w = 0; w < kWarps; ++w)
      if (wm[w] != -INFINITY) o += wo[w][d] * expf(wm[w] - M);
    if (S == 1) {
      p.out[(int64_t(t) * p.Q + h) * D + d] = o / L;
    } else {
      float* rec = p.ws + kCounters + ((int64_t(t) * p.Q + h) * S + s) * (D + 2);
      if (d == 0) {
        rec[0] = M;
        rec[1] = L;
      }
      rec[2 + d] = o;
    }
  }
  if (S == 1) return;
  // The last slice of a (row, head) to finish merges all of them: one launch, no merge kernel.
  // The counters (after the records) start at zero and are left at zero.
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  int* counter = reinterpret_cast<int*>(p.ws) + int64_t(t) * p.Q + h;
  if (threadIdx.x == 0) {
    last = atomicAdd(counter, 1) == S - 1;
    if (last) *counter = 0;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  merge_slices(p.ws + kCounters + (int64_t(t) * p.Q + h) * S * (D + 2), S, D,
               p.out + (int64_t(t) * p.Q + h) * D);
}

int choose_splits(const AttentionArgs& a, int sm_count) {
  const int64_t rows = int64_t(a.T) * a.n_heads;
  if (rows >= 2 * int64_t(sm_count) || rows > kCounters) return 1;
  const int64_t max_keys = a.pos ? a.capacity : int64_t(a.pos0) + a.T;
  int64_t s = (2 * int64_t(sm_count) + rows - 1) / rows;
  s = std::min<int64_t>(s, (max_keys + 31) / 32);
  s = std::min<int64_t>(s, 64);
  return int(std::max<int64_t>(s, 1));
}

}  // namespace

size_t attention_workspace_floats(const AttentionArgs& a, int sm_count) {
  const int S = choose_splits(a, sm_count);
  // Counters, then the slice records.
  return S > 1 ? kCounters + size_t(a.T) * a.n_heads * S * (a.head_dim + 2) : 0;
}

cudaError_t attention_split(const AttentionArgs& a, float* workspace, int sm_count,
                            cudaStream_t s) {
  if (a.head_dim % 4 != 0 || a.head_dim > kMaxD || a.n_kv_heads <= 0 ||
      a.n_heads % a.n_kv_heads != 0 || a.T > 65535)
    return cudaErrorInvalidValue;
  if (a.T <= 0) return cudaSuccess;
  const int S = choose_splits(a, sm_count);
  AttnParams p{a.q,       a.k_cache,    a.v_cache,  a.T,     a.pos0, a.pos,
               a.n_heads, a.n_kv_heads, a.head_dim, a.scale, a.out,  workspace};
  const dim3 grid(a.n_heads, S, a.T);
  const bool d128 = a.head_dim == 128;
  switch (a.kv_dtype) {
    case DType::kF16:
      check_launch(launch_kernel(
          d128 ? attention_split_kernel<__half, 128> : attention_split_kernel<__half, 0>, grid,
          kWarps * kWarp, 0, s, p));
      break;
    case DType::kBF16:
      check_launch(launch_kernel(d128 ? attention_split_kernel<__nv_bfloat16, 128>
                                      : attention_split_kernel<__nv_bfloat16, 0>,
                                 grid, kWarps * kWarp, 0, s, p));
      break;
    case DType::kF32:
      check_launch(launch_kernel(attention_split_kernel<float, 0>, grid, kWarps * kWarp, 0, s, p));
      break;
    default:
      return cudaErrorInvalidValue;
  }
  cudaError_t e = cudaGetLastError();
  return e;
}

}  // namespace cs::cuda
