// Split-K attention: each block takes one (query row, head) and one slice of the keys, with an
// online softmax per warp; a second kernel merges the slices. The decode path (T = 1, where the
// slices give the parallelism) and the fallback for any other shape.
//
// The key range is computed on the device from the position (AttentionArgs::pos), so a captured
// decode step replays with a fixed grid while the context grows: slice s of S covers
// [s * ceil(n/S), (s+1) * ceil(n/S)) of the n visible keys; empty slices report nothing.
//
// Decode with the q/k prologue fused (Backend::qk_attention, T = 1, 16-bit caches, D = 128): the
// cache rows of earlier steps are constant for the step, so each block copies the first kPre
// rows of its slice to shared memory (cp.async) before it waits for the q/k/v projection; after
// the wait it norms and rotates q (and, in the slice that holds it, the new key, which it also
// stores in the caches), and reads keys and values from shared memory. The wait is then followed
// by one round trip for the projection instead of one for q and one per batch of keys and values.
#include <type_traits>

#include "kernels/cuda/device.cuh"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/mma.cuh"

namespace cs::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxD = 256;
constexpr int kMaxVec = kMaxD / (4 * kWarp);  // float4s of the head dims per lane
constexpr int kVBatch = 8;                    // value rows per batch of loads
// The workspace starts with one merge counter per (row, head), zero between launches; slices
// split only when rows x heads < 2 x SMs, so 4096 counters always suffice.
constexpr int kCounters = 4096;
constexpr int kMaxSplits = 64;  // slices per (row, head); blockDim.x must be at least this

// The fused decode path's staging: kPre rows of K, then of V, per block, each row padded to 17
// 16-byte units so that 8 lanes reading 16 bytes of 8 different rows hit 32 different banks.
constexpr int kPre = 64;
constexpr int kRowU4 = 128 * 2 / 16 + 1;
constexpr size_t kStageBytes = size_t(2) * kPre * kRowU4 * 16;

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
  // The fused prologue (qk_attention): q is the projection before its norm and RoPE; k_new and
  // v_new the new key and value rows.
  const float* k_new;
  const float* v_new;
  MatView q_norm, k_norm;
  float eps;
  const float* inv_freq;
  float attn_factor;
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

// q . k for one staged key row (kD = 128, 16-bit): the products in key_dot's order.
template <typename KT>
__device__ __forceinline__ float key_dot_staged(const uint4* row, const float4* q4) {
  uint4 raw[16];
#pragma unroll
  for (int i = 0; i < 16; ++i) raw[i] = row[i];
  float dot = 0.0f;
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    float4 kv = to_float4(make_uint2(raw[i].x, raw[i].y), KT{}), qv = q4[2 * i];
    dot += kv.x * qv.x + kv.y * qv.y + kv.z * qv.z + kv.w * qv.w;
    kv = to_float4(make_uint2(raw[i].z, raw[i].w), KT{});
    qv = q4[2 * i + 1];
    dot += kv.x * qv.x + kv.y * qv.y + kv.z * qv.z + kv.w * qv.w;
  }
  return dot;
}

// Copies `rows` key and value rows from row `first` of K and V (D = 128, 16-bit) to the stage.
template <typename KT>
__device__ __forceinline__ void stage_rows(const KT* K, const KT* V, int first, int rows,
                                           int64_t kv_stride, uint4* stage) {
  const int n = rows * 16;  // 16-byte pieces of each matrix
  for (int i = threadIdx.x; i < 2 * n; i += blockDim.x) {
    const bool is_v = i >= n;
    const int j = is_v ? i - n : i, r = j / 16, c = j % 16;
    const KT* src = (is_v ? V : K) + int64_t(first + r) * kv_stride + c * 8;
    cp_async16(smem_u32(stage + (is_v ? kPre + r : r) * kRowU4 + c), src, true);
  }
  cp_async_commit();
}

// The fused prologue of one warp (T = 1): head x (q, or the new key when is_k) normed and rotated
// at `position`, as qk_norm_rope_store does; q into qs; the key and its value row into the
// caches' row `position` and, when `staged` >= 0, into that row of the stage.
template <typename KT>
__device__ __forceinline__ void prologue(const AttnParams& p, const float* x, bool is_k,
                                         int position, int64_t kv_off, const float (&na)[kRopePer],
                                         const float (&nb)[kRopePer], const float (&fr)[kRopePer],
                                         float* qs, uint4* stage, int staged) {
  constexpr DType kDT = std::is_same_v<KT, __half> ? DType::kF16 : DType::kBF16;
  const int lane = threadIdx.x % kWarp, half = p.D / 2;
  const float* vr = p.v_new + kv_off;
  float a[kRopePer], b[kRopePer], va[kRopePer], vb[kRopePer];
  load_head_pairs(x, is_k ? vr : nullptr, p.D, a, b, va, vb);
  const MatView& norm = is_k ? p.k_norm : p.q_norm;
  norm_rope_regs(a, b, na, nb, fr, norm.data != nullptr, p.D, p.eps, position, p.attn_factor);
  const int64_t dst = int64_t(position) * p.KV * p.D + kv_off;
  void* kc = const_cast<void*>(p.k);  // the new row of the caches is this op's to write
  void* vc = const_cast<void*>(p.v);
  KT* sk = staged >= 0 ? reinterpret_cast<KT*>(stage + staged * kRowU4) : nullptr;
  KT* sv = staged >= 0 ? reinterpret_cast<KT*>(stage + (kPre + staged) * kRowU4) : nullptr;
#pragma unroll
  for (int u = 0; u < kRopePer; ++u) {
    const int j = lane + u * kWarp;
    if (j >= half) break;
    if (!is_k) {
      qs[j] = a[u];
      qs[j + half] = b[u];
      continue;
    }
    store_act(kc, kDT, dst + j, a[u]);
    store_act(kc, kDT, dst + j + half, b[u]);
    store_act(vc, kDT, dst + j, va[u]);
    store_act(vc, kDT, dst + j + half, vb[u]);
    if (sk) {  // the same conversions as store_act
      store_act(sk, kDT, j, a[u]);
      store_act(sk, kDT, j + half, b[u]);
      store_act(sv, kDT, j, va[u]);
      store_act(sv, kDT, j + half, vb[u]);
    }
  }
}

// Merges the S slice records of one (query row, head) into out (D values). Records written by
// other blocks are read through L2 (__ldcg): this block's L1 never held them.
__device__ void merge_slices(const float* recs, int S, int D, float* out) {
  // One round trip for every slice's (m, l), then one per 8 slices for the outputs (loads issued
  // together; a loop of dependent loads took a round trip per slice).
  __shared__ float sm[kMaxSplits], sl[kMaxSplits], se[kMaxSplits];
  if (threadIdx.x < S) {
    sm[threadIdx.x] = __ldcg(recs + int64_t(threadIdx.x) * (D + 2));
    sl[threadIdx.x] = __ldcg(recs + int64_t(threadIdx.x) * (D + 2) + 1);
  }
  __syncthreads();
  float M = -INFINITY;
  for (int s = 0; s < S; ++s) M = fmaxf(M, sm[s]);
  if (threadIdx.x < S)
    se[threadIdx.x] = sm[threadIdx.x] != -INFINITY ? expf(sm[threadIdx.x] - M) : 0;
  __syncthreads();
  float L = 0.0f;
  for (int s = 0; s < S; ++s)
    if (sm[s] != -INFINITY) L += sl[s] * se[s];
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.0f;
    for (int s0 = 0; s0 < S; s0 += 8) {
      float v[8];
#pragma unroll
      for (int u = 0; u < 8; ++u)
        v[u] = s0 + u < S ? __ldcg(recs + int64_t(s0 + u) * (D + 2) + 2 + d) : 0.0f;
#pragma unroll
      for (int u = 0; u < 8; ++u)
        if (s0 + u < S && sm[s0 + u] != -INFINITY) o += v[u] * se[s0 + u];
    }
    out[d] = o / L;
  }
}

// kD: the head dimension when fixed at compile time (128, 16-bit caches), else 0. kFused: the
// decode path with the prologue fused and the first kPre rows of the slice staged (kD = 128).
template <typename KT, int kD, bool kFused>
__global__ void __launch_bounds__(kWarps* kWarp) attention_split_kernel(AttnParams p) {
  static_assert(!kFused || (kD == 128 && sizeof(KT) == 2));
  // float4s of head dims per lane, and value rows per batch of loads.
  constexpr int kVec = kD > 0 ? (kD + 4 * kWarp - 1) / (4 * kWarp) : kMaxVec;
  constexpr int kVB = kD > 0 ? 2 * kVBatch : kVBatch;
  const int h = blockIdx.x, s = blockIdx.y, S = gridDim.y, t = blockIdx.z;
  const int D = kD > 0 ? kD : p.D, lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int64_t kv_stride = int64_t(p.KV) * D;
  const int64_t kv_off = int64_t(h / (p.Q / p.KV)) * D;
  const KT* K = static_cast<const KT*>(p.k) + kv_off;
  const KT* V = static_cast<const KT*>(p.v) + kv_off;
  extern __shared__ uint4 stage[];  // kFused: kStageBytes
  int staged = 0;                   // rows of the slice in the stage
  float na[kRopePer], nb[kRopePer], fr[kRopePer];
  if constexpr (kFused) {
    // The position was uploaded before the step, and the cache rows before it were written by
    // earlier steps: both are complete when this kernel starts (each kernel triggers its
    // successor only after its own wait), so they are read before the wait.
    const int n = (p.pos ? *p.pos : p.pos0) + 1, chunk = (n + S - 1) / S;
    const int first = s * chunk;
    staged = max(0, min(min(n, first + chunk) - first, kPre));
    stage_rows<KT>(K, V, first, min(staged, n - 1 - first), kv_stride, stage);
    if (warp < 2) norm_rope_consts(warp == 0 ? p.q_norm : p.k_norm, p.inv_freq, kD, na, nb, fr);
  }
  pdl_wait();
  pdl_trigger();
  const int n_keys = (p.pos ? *p.pos : p.pos0) + t + 1;
  const int chunk = (n_keys + S - 1) / S;
  const int k_begin = s * chunk, k_end = min(n_keys, k_begin + chunk);
  __shared__ float4 q4[kMaxD / 4];
  __shared__ float wm[kWarps], wl[kWarps];
  __shared__ __align__(16) float wo[kWarps][kMaxD];
  float* qs = reinterpret_cast<float*>(q4);
  if constexpr (kFused) {
    const int last = n_keys - 1 - k_begin;  // the new key's row in the slice
    if (warp == 0)
      prologue<KT>(p, p.q + int64_t(h) * D, false, n_keys - 1, kv_off, na, nb, fr, qs, stage, -1);
    else if (warp == 1 && k_begin < k_end && k_end == n_keys)
      prologue<KT>(p, p.k_new + kv_off, true, n_keys - 1, kv_off, na, nb, fr, qs, stage,
                   last < staged ? last : -1);
    cp_async_wait<0>();
  } else {
    const float* qrow = p.q + (int64_t(t) * p.Q + h) * D;
    for (int d = threadIdx.x; d < D; d += blockDim.x) qs[d] = qrow[d];
  }
  __syncthreads();
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
      float dot;
      if constexpr (kFused)
        dot = key - k_begin < staged ? key_dot_staged<KT>(stage + (key - k_begin) * kRowU4, q4)
                                     : key_dot<KT, kD>(K + int64_t(key) * kv_stride, q4, D);
      else
        dot = key_dot<KT, kD>(K + int64_t(key) * kv_stride, q4, D);
      sc = dot * p.scale;
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
        const int row = kb + min(j0 + u, nv - 1);
        if constexpr (kFused) {
          if (row - k_begin < staged) {  // kVec = 1: dims 4 lane .. 4 lane + 3
            const uint4* sr = stage + (kPre + row - k_begin) * kRowU4;
            vv[u][0] = to_float4(reinterpret_cast<const uint2*>(sr)[lane], KT{});
            continue;
          }
        }
        const KT* vr = V + int64_t(row) * kv_stride;
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
  // About three blocks per SM: 12 slices for Qwen3-30B's 32 heads on 132 SMs (S30 decode on the
  // H200: 12 slices 1.5-2% faster than 9 or 16, docs/PERF.md session 24).
  int64_t s = std::max<int64_t>(3 * int64_t(sm_count) / rows, 1);
  s = std::min<int64_t>(s, (max_keys + 31) / 32);
  s = std::min<int64_t>(s, kMaxSplits);
  return int(std::max<int64_t>(s, 1));
}

}  // namespace

size_t attention_workspace_floats(const AttentionArgs& a, int sm_count) {
  const int S = choose_splits(a, sm_count);
  // Counters, then the slice records.
  return S > 1 ? kCounters + size_t(a.T) * a.n_heads * S * (a.head_dim + 2) : 0;
}

bool attention_prologue_fused_ok(const AttentionArgs& a) {
  const bool aligned = reinterpret_cast<uintptr_t>(a.k_cache) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(a.v_cache) % 16 == 0;  // cp.async pieces
  return a.T == 1 && a.head_dim == 128 && a.n_kv_heads > 0 && a.n_heads % a.n_kv_heads == 0 &&
         (a.kv_dtype == DType::kF16 || a.kv_dtype == DType::kBF16) && aligned;
}

cudaError_t attention_split(const AttentionArgs& a, float* workspace, int sm_count, cudaStream_t s,
                            const QkPrologue* pro) {
  if (a.head_dim % 4 != 0 || a.head_dim > kMaxD || a.n_kv_heads <= 0 ||
      a.n_heads % a.n_kv_heads != 0 || a.T > 65535 || (pro && !attention_prologue_fused_ok(a)))
    return cudaErrorInvalidValue;
  if (a.T <= 0) return cudaSuccess;
  const int S = choose_splits(a, sm_count);
  AttnParams p{a.q,       a.k_cache,    a.v_cache,  a.T,     a.pos0, a.pos,
               a.n_heads, a.n_kv_heads, a.head_dim, a.scale, a.out,  workspace};
  const dim3 grid(a.n_heads, S, a.T);
  if (pro) {
    p.k_new = pro->k;
    p.v_new = pro->v;
    p.q_norm = pro->q_norm;
    p.k_norm = pro->k_norm;
    p.eps = pro->eps;
    p.inv_freq = pro->rope.inv_freq;
    p.attn_factor = pro->rope.attn_factor;
    check_launch(launch_kernel(a.kv_dtype == DType::kF16
                                   ? attention_split_kernel<__half, 128, true>
                                   : attention_split_kernel<__nv_bfloat16, 128, true>,
                               grid, kWarps * kWarp, kStageBytes, s, p));
    return cudaSuccess;
  }
  const bool d128 = a.head_dim == 128;
  switch (a.kv_dtype) {
    case DType::kF16:
      check_launch(launch_kernel(d128 ? attention_split_kernel<__half, 128, false>
                                      : attention_split_kernel<__half, 0, false>,
                                 grid, kWarps * kWarp, 0, s, p));
      break;
    case DType::kBF16:
      check_launch(launch_kernel(d128 ? attention_split_kernel<__nv_bfloat16, 128, false>
                                      : attention_split_kernel<__nv_bfloat16, 0, false>,
                                 grid, kWarps * kWarp, 0, s, p));
      break;
    case DType::kF32:
      check_launch(
          launch_kernel(attention_split_kernel<float, 0, false>, grid, kWarps * kWarp, 0, s, p));
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace cs::cuda
