// Small memory-bound ops: embedding gather, RMSNorm with fused residual add, add, q/k norm with
// RoPE, KV-cache stores, conversions and dequantization for the cuBLAS paths.
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/launch.h"

namespace cs::cuda {
namespace {

unsigned blocks_for(int64_t n, int threads) {
  return unsigned((n + threads - 1) / threads);
}

__global__ void embed_kernel(MatView table, const int32_t* ids, float* out) {
  pdl_wait();
  pdl_trigger();
  const int t = blockIdx.y;
  const int64_t row = ids[t];
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < table.cols;
       c += int64_t(gridDim.x) * blockDim.x)
    out[int64_t(t) * table.cols + c] = load_weight(table, row, c);
}

constexpr int kNormPer = 4;  // values per thread held in registers by rmsnorm's fast path

// One block per row: x += residual (written back), out = x / rms(x) * w. Rows of at most kNormPer
// values per thread keep them in registers, with the weights loaded before the wait (constant), so
// after its predecessor the kernel reads x and the residual once and writes.
__global__ void rmsnorm_kernel(float* x, const float* residual, MatView w, float eps, int dim,
                               float* out) {
  __shared__ float red[32];
  const bool regs = dim <= kNormPer * int(blockDim.x);
  float wv[kNormPer], xv[kNormPer];
  if (regs)
#pragma unroll
    for (int u = 0; u < kNormPer; ++u) {
      const int i = threadIdx.x + u * blockDim.x;
      wv[u] = i < dim ? load_weight(w, 0, i) : 0.0f;
    }
  pdl_wait();
  pdl_trigger();
  float* xr = x + int64_t(blockIdx.x) * dim;
  const float* rr = residual ? residual + int64_t(blockIdx.x) * dim : nullptr;
  float* o = out + int64_t(blockIdx.x) * dim;
  float ss = 0.0f;
  if (regs) {
#pragma unroll
    for (int u = 0; u < kNormPer; ++u) {
      const int i = threadIdx.x + u * blockDim.x;
      xv[u] = i < dim ? xr[i] : 0.0f;
      if (rr && i < dim) xv[u] += rr[i];
    }
#pragma unroll
    for (int u = 0; u < kNormPer; ++u) {
      const int i = threadIdx.x + u * blockDim.x;
      if (rr && i < dim) xr[i] = xv[u];
      ss += xv[u] * xv[u];
    }
    ss = block_sum(ss, red);
    const float inv = 1.0f / sqrtf(ss / float(dim) + eps);
#pragma unroll
    for (int u = 0; u < kNormPer; ++u) {
      const int i = threadIdx.x + u * blockDim.x;
      if (i < dim) o[i] = (xv[u] * inv) * wv[u];
    }
    return;
  }
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = xr[i];
    if (rr) xr[i] = v = v + rr[i];
    ss += v * v;
  }
  ss = block_sum(ss, red);
  const float inv = 1.0f / sqrtf(ss / float(dim) + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = (xr[i] * inv) * load_weight(w, 0, i);
}

__global__ void add_kernel(float* x, const float* y, int64_t n) {
  pdl_wait();
  pdl_trigger();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] += y[i];
}

// One warp per (token, head): optional RMSNorm over the head, then rotate-half RoPE.
__global__ void norm_rope_kernel(float* x, int T, int heads, int D, MatView norm, float eps,
                                 int pos0, const float* inv_freq, float attn_factor,
                                 const int32_t* pos) {
  pdl_wait();
  pdl_trigger();
  const int lane = threadIdx.x % kWarp;
  const int64_t item = int64_t(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  if (item >= int64_t(T) * heads) return;
  const int t = int(item / heads);
  float* v = x + item * D;
  const int half = D / 2;
  float inv = 1.0f;
  if (norm.data) {
    float ss = 0.0f;
    for (int i = lane; i < D; i += kWarp) ss += v[i] * v[i];
    ss = warp_sum(ss);
    inv = 1.0f / sqrtf(ss / float(D) + eps);
  }
  const int position = (pos ? *pos : pos0) + t;
  for (int j = lane; j < half; j += kWarp) {
    float a = v[j], b = v[j + half];
    if (norm.data) {
      a = (a * inv) * load_weight(norm, 0, j);
      b = (b * inv) * load_weight(norm, 0, j + half);
    }
    rope_rotate(a, b, inv_freq[j], position, attn_factor);
    v[j] = a;
    v[j + half] = b;
  }
}

// norm_rope of q and k heads and the cache store of k and v: one warp per (token, head), q heads
// first. A k head's warp writes its rotated values and the matching v values to the caches.
struct QkParams {
  float* q;
  float* k;
  const float* v;
  int T, Q, KV, D;
  MatView q_norm, k_norm;
  float eps;
  int pos0;
  const float* inv_freq;
  float attn_factor;
  const int32_t* pos;
  DType dt;
  void* kc;
  void* vc;
};

// Writes the rotated pair (ra, rb) of head dims j and j + half back to x and, for a k head,
// stores it and the matching v values (va, vb) in the caches at `dst`.
__device__ __forceinline__ void store_pair(const QkParams& p, float* x, int j, int half, float ra,
                                           float rb, bool is_k, int64_t dst, float va, float vb) {
  x[j] = ra;
  x[j + half] = rb;
  if (is_k) {
    store_act(p.kc, p.dt, dst + j, ra);
    store_act(p.kc, p.dt, dst + j + half, rb);
    store_act(p.vc, p.dt, dst + j, va);
    store_act(p.vc, p.dt, dst + j + half, vb);
  }
}

// Fast path of qk_rope_store_kernel for head_dim <= 2 * kRopePer * 32: the norm weights and the
// frequencies are loaded before the wait (constant), x and v once after it.
__device__ __forceinline__ void qk_rope_store_regs(const QkParams& p, float* x, const float* vr,
                                                   const MatView& norm, bool is_k, int t,
                                                   int64_t head_off) {
  const int lane = threadIdx.x % kWarp, half = p.D / 2;
  float fr[kRopePer], na[kRopePer], nb[kRopePer];
  norm_rope_consts(norm, p.inv_freq, p.D, na, nb, fr);
  pdl_wait();
  pdl_trigger();
  const int position = (p.pos ? *p.pos : p.pos0) + t;
  const int64_t dst = int64_t(position) * p.KV * p.D + head_off;
  float a[kRopePer], b[kRopePer], va[kRopePer], vb[kRopePer];
  load_head_pairs(x, is_k ? vr : nullptr, p.D, a, b, va, vb);
  norm_rope_regs(a, b, na, nb, fr, norm.data != nullptr, p.D, p.eps, position, p.attn_factor);
#pragma unroll
  for (int u = 0; u < kRopePer; ++u) {
    const int j = lane + u * kWarp;
    if (j >= half) break;
    store_pair(p, x, j, half, a[u], b[u], is_k, dst, va[u], vb[u]);
  }
}

__global__ void qk_rope_store_kernel(QkParams p) {
  const int lane = threadIdx.x % kWarp, heads = p.Q + p.KV;
  const int64_t item = int64_t(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  if (item >= int64_t(p.T) * heads) return;
  const int t = int(item / heads), h = int(item % heads), D = p.D, half = D / 2;
  const bool is_k = h >= p.Q;
  const int kh = h - p.Q;
  float* x = is_k ? p.k + (int64_t(t) * p.KV + kh) * D : p.q + (int64_t(t) * p.Q + h) * D;
  const float* vr = is_k ? p.v + (int64_t(t) * p.KV + kh) * D : nullptr;
  const MatView& norm = is_k ? p.k_norm : p.q_norm;
  const int64_t kv_dim = int64_t(p.KV) * D;
  if (half <= kRopePer * kWarp) {
    qk_rope_store_regs(p, x, vr, norm, is_k, t, int64_t(kh) * D);
    return;
  }
  pdl_wait();
  pdl_trigger();
  float inv = 1.0f;
  if (norm.data) {
    float ss = 0.0f;
    for (int i = lane; i < D; i += kWarp) ss += x[i] * x[i];
    ss = warp_sum(ss);
    inv = 1.0f / sqrtf(ss / float(D) + p.eps);
  }
  const int position = (p.pos ? *p.pos : p.pos0) + t;
  const int64_t dst = int64_t(position) * kv_dim + int64_t(kh) * D;
  for (int j = lane; j < half; j += kWarp) {
    float a = x[j], b = x[j + half];
    if (norm.data) {
      a = (a * inv) * load_weight(norm, 0, j);
      b = (b * inv) * load_weight(norm, 0, j + half);
    }
    rope_rotate(a, b, p.inv_freq[j], position, p.attn_factor);
    store_pair(p, x, j, half, a, b, is_k, dst, is_k ? vr[j] : 0.0f, is_k ? vr[j + half] : 0.0f);
  }
}

__global__ void kv_store_kernel(const float* k, const float* v, int T, int pos0, int kv_dim,
                                DType dt, void* kc, void* vc, const int32_t* pos) {
  pdl_wait();
  pdl_trigger();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(T) * kv_dim) return;
  const int64_t dst = int64_t(pos ? *pos : pos0) * kv_dim + i;
  store_act(kc, dt, dst, k[i]);
  store_act(vc, dt, dst, v[i]);
}

__global__ void convert_kernel(const float* x, int64_t n, DType to, void* out) {
  pdl_wait();
  pdl_trigger();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) store_act(out, to, i, x[i]);
}

// Four values per thread (one 16-byte load, one 8-byte store) into F16 or BF16.
__global__ void convert4_kernel(const float4* x, int64_t n4, bool f16, uint2* out) {
  pdl_wait();
  pdl_trigger();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n4) return;
  const float4 v = x[i];
  uint32_t lo, hi;
  if (f16) {
    const __half2 a = __floats2half2_rn(v.x, v.y), b = __floats2half2_rn(v.z, v.w);
    lo = *reinterpret_cast<const uint32_t*>(&a);
    hi = *reinterpret_cast<const uint32_t*>(&b);
  } else {
    const __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
    lo = *reinterpret_cast<const uint32_t*>(&a);
    hi = *reinterpret_cast<const uint32_t*>(&b);
  }
  out[i] = make_uint2(lo, hi);
}

// Two weights per thread for Q4 (one byte), one otherwise.
__global__ void dequantize_kernel(MatView w, DType to, void* out) {
  pdl_wait();
  pdl_trigger();
  const int64_t n = w.rows * w.cols;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (w.dtype == DType::kQ4) {
    if (i >= n / 2) return;
    const int64_t r = i / (w.cols / 2), byte = i % (w.cols / 2);
    const int64_t c0 = (byte / 16) * 32 + byte % 16;
    store_act(out, to, r * w.cols + c0, load_weight(w, r, c0));
    store_act(out, to, r * w.cols + c0 + 16, load_weight(w, r, c0 + 16));
    return;
  }
  if (i < n) store_act(out, to, i, load_weight(w, i / w.cols, i % w.cols));
}

__global__ void copy_kernel_impl(const uint4* src, uint4* dst, size_t n) {
  pdl_wait();
  pdl_trigger();
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    dst[i] = __ldcs(src + i);
}

}  // namespace

cudaError_t embed(const MatView& table, const int32_t* ids, int T, float* out, cudaStream_t s) {
  if (T <= 0) return cudaSuccess;
  const dim3 grid(blocks_for(table.cols, 256) < 64 ? blocks_for(table.cols, 256) : 64, T);
  check_launch(launch_kernel(embed_kernel, grid, 256, 0, s, table, ids, out));
  return cudaGetLastError();
}

cudaError_t rmsnorm(float* x, const float* residual, const MatView& w, float eps, int T, int dim,
                    float* out, cudaStream_t s) {
  if (T <= 0) return cudaSuccess;
  const int threads = dim >= 1024 ? 1024 : dim >= 256 ? 256 : 64;
  check_launch(launch_kernel(rmsnorm_kernel, T, threads, 0, s, x, residual, w, eps, dim, out));
  return cudaGetLastError();
}

cudaError_t add(float* x, const float* y, int64_t n, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  check_launch(launch_kernel(add_kernel, blocks_for(n, 256), 256, 0, s, x, y, n));
  return cudaGetLastError();
}

cudaError_t norm_rope(float* x, int T, int heads, int head_dim, const MatView& norm, float eps,
                      int pos0, const RopeArgs& rope, cudaStream_t s) {
  const int64_t items = int64_t(T) * heads;
  if (items <= 0) return cudaSuccess;
  check_launch(launch_kernel(norm_rope_kernel, blocks_for(items, 4), 4 * kWarp, 0, s, x, T, heads,
                             head_dim, norm, eps, pos0, rope.inv_freq, rope.attn_factor, rope.pos));
  return cudaGetLastError();
}

cudaError_t kv_store(const float* k, const float* v, int T, int pos0, int kv_dim, DType kv_dtype,
                     void* k_cache, void* v_cache, const int32_t* pos, cudaStream_t s) {
  const int64_t n = int64_t(T) * kv_dim;
  if (n <= 0) return cudaSuccess;
  check_launch(launch_kernel(kv_store_kernel, blocks_for(n, 256), 256, 0, s, k, v, T, pos0, kv_dim,
                             kv_dtype, k_cache, v_cache, pos));
  return cudaGetLastError();
}

cudaError_t qk_norm_rope_store(float* q, float* k, const float* v, int T, int n_heads,
                               int n_kv_heads, int head_dim, const MatView& q_norm,
                               const MatView& k_norm, float eps, int pos0, const RopeArgs& rope,
                               DType kv_dtype, void* k_cache, void* v_cache, cudaStream_t s) {
  const int64_t items = int64_t(T) * (n_heads + n_kv_heads);
  if (items <= 0) return cudaSuccess;
  QkParams p{q,        k,       v,      T,    n_heads,       n_kv_heads,       head_dim,
             q_norm,   k_norm,  eps,    pos0, rope.inv_freq, rope.attn_factor, rope.pos,
             kv_dtype, k_cache, v_cache};
  check_launch(launch_kernel(qk_rope_store_kernel, blocks_for(items, 4), 4 * kWarp, 0, s, p));
  return cudaSuccess;
}

cudaError_t convert(const float* x, int64_t n, DType to, void* out, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  const bool vec = (to == DType::kF16 || to == DType::kBF16) && n % 4 == 0 &&
                   reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(out) % 8 == 0;
  if (vec)
    check_launch(launch_kernel(convert4_kernel, blocks_for(n / 4, 256), 256, 0, s,
                               reinterpret_cast<const float4*>(x), n / 4, to == DType::kF16,
                               static_cast<uint2*>(out)));
  else
    check_launch(launch_kernel(convert_kernel, blocks_for(n, 256), 256, 0, s, x, n, to, out));
  return cudaGetLastError();
}

cudaError_t dequantize(const MatView& w, DType to, void* out, cudaStream_t s) {
  const int64_t n = w.dtype == DType::kQ4 ? w.rows * w.cols / 2 : w.rows * w.cols;
  if (n <= 0) return cudaSuccess;
  check_launch(launch_kernel(dequantize_kernel, blocks_for(n, 256), 256, 0, s, w, to, out));
  return cudaGetLastError();
}

cudaError_t copy_kernel(const void* src, void* dst, size_t bytes, cudaStream_t s) {
  const size_t n = bytes / 16;
  check_launch(launch_kernel(copy_kernel_impl, 4096, 256, 0, s, static_cast<const uint4*>(src),
                             static_cast<uint4*>(dst), n));
  return cudaGetLastError();
}

}  // namespace cs::cuda
