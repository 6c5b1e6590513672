// Flash attention for prefill on tensor cores (mma.sync m16n8k16, sm_80 and later: the same code
// runs on sm_89 and sm_90). A block of 4 warps takes 64 query rows of one head; each warp owns 16
// rows, keeps its output accumulators and softmax statistics in registers and walks the causal
// key range in tiles of 64 keys staged in shared memory (K row-major, V transposed, rows padded
// so fragment loads hit 32 distinct banks). Q and P are rounded to the cache's 16-bit type;
// scores, softmax and accumulation stay in fp32.
//
// Fragment layouts (PTX ISA, mma.m16n8k16): with g = lane / 4 and c = lane % 4, A holds
// (row g | g+8, cols 2c, 2c+1 | 2c+8, 2c+9), B holds (k 2c, 2c+1 | 2c+8, 2c+9; n g), and the
// accumulator holds (row g | g+8, cols 2c, 2c+1).
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/launch.h"

namespace cs::cuda {
namespace {

constexpr int kRowsPerBlock = 64, kKeys = 64, kThreads = 128;

template <typename KT>
__device__ __forceinline__ uint32_t pack2(float a, float b);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float a, float b) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(a, b);
  return *reinterpret_cast<const uint32_t*>(&v);
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float a, float b) {
  const __half2 v = __floats2half2_rn(a, b);
  return *reinterpret_cast<const uint32_t*>(&v);
}

template <typename KT>
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
  if constexpr (std::is_same_v<KT, __nv_bfloat16>)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

struct FlashParams {
  const float* q;  // [T][Q*D]
  const void* k;   // [ctx][KV*D]
  const void* v;
  int T, pos0, Q, KV;
  float scale_log2;  // scale * log2(e): scores go through exp2
  float* out;        // [T][Q*D]
};

template <typename KT, int D>
__global__ void __launch_bounds__(kThreads) flash_kernel(FlashParams p) {
  pdl_wait();
  pdl_trigger();
  constexpr int KS = D + 8, VS = kKeys + 8;  // padded row lengths (elements)
  __shared__ __align__(16) KT ks[kKeys * KS];
  __shared__ __align__(16) KT vt[D * VS];
  const int h = blockIdx.y, r_block = blockIdx.x * kRowsPerBlock;
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, g = lane / 4, c = lane % 4;
  const int r0 = r_block + warp * 16;  // this warp's first query row
  const int64_t qd = int64_t(p.Q) * D, kvd = int64_t(p.KV) * D;
  const int kvh = h / (p.Q / p.KV);
  // Q fragments, rows r0 + g and r0 + g + 8.
  uint32_t qa[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int row = r0 + g + (i % 2) * 8, col = kk * 16 + (i / 2) * 8 + 2 * c;
      float2 v = make_float2(0.0f, 0.0f);
      if (row < p.T) v = *reinterpret_cast<const float2*>(p.q + row * qd + int64_t(h) * D + col);
      qa[kk][i] = pack2<KT>(v.x, v.y);
    }
  float o[D / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const int last_row = min(p.T, r_block + kRowsPerBlock) - 1;
  const int n_keys = p.pos0 + last_row + 1;
  const KT* K = static_cast<const KT*>(p.k) + int64_t(kvh) * D;
  const KT* V = static_cast<const KT*>(p.v) + int64_t(kvh) * D;
  for (int kt = 0; kt < n_keys; kt += kKeys) {
    // Stage K (row-major) and V (transposed), 8 elements per 16-byte load. Consecutive threads
    // take consecutive keys, so the transposed V stores of a warp fall in distinct banks.
    for (int i = threadIdx.x; i < kKeys * D / 8; i += kThreads) {
      const int key = i % kKeys, d = (i / kKeys) * 8;
      uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
      if (kt + key < n_keys) {
        kv = *reinterpret_cast<const uint4*>(K + (kt + key) * kvd + d);
        vv = *reinterpret_cast<const uint4*>(V + (kt + key) * kvd + d);
      }
      *reinterpret_cast<uint4*>(ks + key * KS + d) = kv;
      const KT* ve = reinterpret_cast<const KT*>(&vv);
#pragma unroll
      for (int e = 0; e < 8; ++e) vt[(d + e) * VS + key] = ve[e];
    }
    __syncthreads();
    // S = Q K^T for 16 rows x 64 keys.
    float s[kKeys / 8][4];
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j) {
      s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
      const KT* kr = ks + (j * 8 + g) * KS + 2 * c;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk)
        mma<KT>(s[j], qa[kk], *reinterpret_cast<const uint32_t*>(kr + kk * 16),
                *reinterpret_cast<const uint32_t*>(kr + kk * 16 + 8));
    }
    // Causal mask, scale, online softmax (rows g and g + 8 of the warp's tile).
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int row = r0 + g + (i / 2) * 8, key = kt + j * 8 + 2 * c + (i % 2);
        const bool ok = row < p.T && key <= p.pos0 + row;
        s[j][i] = ok ? s[j][i] * p.scale_log2 : -INFINITY;
        mx[i / 2] = fmaxf(mx[i / 2], s[j][i]);
      }
    float corr[2], base[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float m_new = fmaxf(m[r], mx[r]);
      base[r] = m_new == -INFINITY ? 0.0f : m_new;  // a fully masked row stays at zero
      corr[r] = exp2f(m[r] - base[r]);
      m[r] = m_new;
      l[r] *= corr[r];
    }
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        s[j][i] = exp2f(s[j][i] - base[i / 2]);
        l[i / 2] += s[j][i];
      }
#pragma unroll
    for (int dn = 0; dn < D / 8; ++dn)
#pragma unroll
      for (int i = 0; i < 4; ++i) o[dn][i] *= corr[i / 2];
        // O += P V: the score accumulators of two adjacent key tiles form one A fragment.
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
      const uint32_t pa[4] = {pack2<KT>(s[2 * kk][0], s[2 * kk][1]),
                              pack2<KT>(s[2 * kk][2], s[2 * kk][3]),
                              pack2<KT>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack2<KT>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dn = 0; dn < D / 8; ++dn) {
        const KT* vr = vt + (dn * 8 + g) * VS + kk * 16 + 2 * c;
        mma<KT>(o[dn], pa, *reinterpret_cast<const uint32_t*>(vr),
                *reinterpret_cast<const uint32_t*>(vr + 8));
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = r0 + g + r * 8;
    if (row >= p.T) continue;
    float* orow = p.out + row * qd + int64_t(h) * D;
    const float inv = 1.0f / l[r];
#pragma unroll
    for (int dn = 0; dn < D / 8; ++dn)
      *reinterpret_cast<float2*>(orow + dn * 8 + 2 * c) =
          make_float2(o[dn][2 * r] * inv, o[dn][2 * r + 1] * inv);
  }
}

template <typename KT>
cudaError_t launch(const AttentionArgs& a, cudaStream_t s) {
  FlashParams p{a.q,    a.k_cache, a.v_cache,    a.T,
                a.pos0, a.n_heads, a.n_kv_heads, a.scale * 1.4426950408889634f,
                a.out};
  const dim3 grid((a.T + kRowsPerBlock - 1) / kRowsPerBlock, a.n_heads);
  if (a.head_dim == 64)
    check_launch(launch_kernel(flash_kernel<KT, 64>, grid, kThreads, 0, s, p));
  else
    check_launch(launch_kernel(flash_kernel<KT, 128>, grid, kThreads, 0, s, p));
  return cudaGetLastError();
}

}  // namespace

bool flash_attention_supported(const AttentionArgs& a) {
  return a.pos == nullptr && (a.head_dim == 64 || a.head_dim == 128) &&
         (a.kv_dtype == DType::kF16 || a.kv_dtype == DType::kBF16) && a.n_kv_heads > 0 &&
         a.n_heads % a.n_kv_heads == 0 && a.T >= 1;
}

cudaError_t flash_attention(const AttentionArgs& a, cudaStream_t s) {
  if (!flash_attention_supported(a)) return cudaErrorInvalidValue;
  return a.kv_dtype == DType::kBF16 ? launch<__nv_bfloat16>(a, s) : launch<__half>(a, s);
}

}  // namespace cs::cuda
