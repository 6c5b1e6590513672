// Flash attention for prefill on tensor cores (mma.sync m16n8k16, ldmatrix and cp.async: sm_80 and
// later, so the same code runs on sm_89 and sm_90). A block of 8 warps takes 128 query rows of one
// head; each warp owns 16 rows, keeps its Q fragments, output accumulators and softmax statistics
// in registers and walks the causal key range in tiles of 64 keys. K and V tiles are staged
// row-major in shared memory by cp.async, double-buffered: tile t + 1 loads while tile t is
// computed, with one __syncthreads per tile. Q and P are rounded to the cache's 16-bit type;
// scores, softmax and accumulation stay in fp32.
//
// Fragment and ldmatrix layouts: kernels/cuda/mma.cuh. For S = Q K^T an 8x8 block of K rows
// (keys = n) is a B fragment half as stored, and for O = P V an 8x8 block of V rows (keys = k) is
// one after the .trans load.
#include <atomic>

#include "kernels/cuda/device.cuh"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/mma.cuh"

namespace cs::cuda {
namespace {

constexpr int kWarps = 8, kThreads = kWarps * kWarp, kRowsPerBlock = kWarps * 16, kKeys = 64;

// Shared memory: stages 0 and 1, each a K tile then a V tile of kKeys rows of D elements. Rows are
// padded by 16 bytes, so the 8 rows an ldmatrix phase reads start in 8 distinct 16-byte bank
// groups; cp.async writes are 16 bytes per lane along a row and do not conflict either.
template <int D>
struct Smem {
  static constexpr int kStride = D + 8;                     // row length (elements)
  static constexpr int kTileBytes = kKeys * kStride * 2;    // one K or V tile
  static constexpr int kStageBytes = 2 * kTileBytes;        // K and V
  static constexpr int kBytes = 2 * kStageBytes;            // D = 128: 69632, D = 64: 36864
  static constexpr int kChunks = kKeys * D / 8 / kThreads;  // 16-byte loads per thread and tile
  static_assert(kKeys * D / 8 % kThreads == 0, "tile loads must split evenly over the threads");
};

__device__ __forceinline__ float fast_exp2(float x) {  // exp2(-inf) = 0
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

struct FlashParams {
  const float* q;  // [T][Q*D]
  const void* k;   // [ctx][KV*D]
  const void* v;
  int T, pos0, Q, KV;
  float scale_log2;  // scale * log2(e): scores go through exp2
  float* out;        // [T][Q*D]
};

// Grid: (Q heads, row blocks). Row blocks run in reverse order, so the blocks with the longest
// causal key range are scheduled first and the short ones fill in behind them.
template <typename KT, int D>
__global__ void __launch_bounds__(kThreads, 1) flash_kernel(FlashParams p) {
  using S = Smem<D>;
  pdl_wait();
  pdl_trigger();
  extern __shared__ __align__(16) unsigned char smem[];
  const uint32_t sbase = smem_u32(smem);
  const int h = blockIdx.x, r_block = (gridDim.y - 1 - blockIdx.y) * kRowsPerBlock;
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, g = lane / 4, c = lane % 4;
  const int r0 = r_block + warp * 16;  // this warp's first query row
  const int64_t qd = int64_t(p.Q) * D, kvd = int64_t(p.KV) * D;
  const int kvh = h / (p.Q / p.KV);
  const int last_row = min(p.T, r_block + kRowsPerBlock) - 1;
  const int n_keys = p.pos0 + last_row + 1, n_tiles = (n_keys + kKeys - 1) / kKeys;
  const KT* K = static_cast<const KT*>(p.k) + int64_t(kvh) * D;
  const KT* V = static_cast<const KT*>(p.v) + int64_t(kvh) * D;

  // Key tile t into stage t % 2, one commit group. Consecutive threads take consecutive 16-byte
  // pieces of a key row; keys past n_keys are zero-filled.
  auto load_tile = [&](int t) {
    const uint32_t stage = sbase + (t & 1) * S::kStageBytes;
#pragma unroll
    for (int i = 0; i < S::kChunks; ++i) {
      const int idx = threadIdx.x + i * kThreads, key = idx / (D / 8), d = idx % (D / 8) * 8;
      const bool ok = t * kKeys + key < n_keys;
      const int64_t src = (ok ? t * kKeys + key : 0) * kvd + d;
      const uint32_t dst = stage + (key * S::kStride + d) * 2;
      cp_async16(dst, K + src, ok);
      cp_async16(dst + S::kTileBytes, V + src, ok);
    }
    cp_async_commit();
  };
  load_tile(0);

  // Q fragments, rows r0 + g and r0 + g + 8 (loaded while tile 0 is in flight).
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
  // This lane's ldmatrix row (bytes into a tile). K, matrix i = lane / 8: key lane % 8, dims
  // 8i..8i+7, so registers 0-3 are b0, b1 of one 16-dim step and b0, b1 of the next. V (.trans),
  // matrix i: keys 8(i % 2) + lane % 8, dims 8(i / 2)..: b0, b1 of one 8-dim n tile, then the next.
  const uint32_t k_lane = ((lane % 8) * S::kStride + (lane / 8) * 8) * 2;
  const uint32_t v_lane = ((lane % 16) * S::kStride + (lane / 16) * 8) * 2 + S::kTileBytes;

  for (int t = 0; t < n_tiles; ++t) {
    // Tile t has landed for every thread, and every warp is done with tile t - 1, whose stage
    // tile t + 1 now overwrites while tile t is computed.
    cp_async_wait<0>();
    __syncthreads();
    if (t + 1 < n_tiles) load_tile(t + 1);
    const int kt = t * kKeys;
    if (r0 >= p.T || kt > p.pos0 + r0 + 15) continue;  // every key of the tile is masked
    const uint32_t stage = sbase + (t & 1) * S::kStageBytes;
    // S = Q K^T for 16 rows x 64 keys.
    float s[kKeys / 8][4];
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j) {
      s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < D / 16; kk += 2) {
        uint32_t b[4];
        ldsm4<false>(b, stage + k_lane + (j * 8 * S::kStride + kk * 16) * 2);
        mma<KT>(s[j], qa[kk], b[0], b[1]);
        mma<KT>(s[j], qa[kk + 1], b[2], b[3]);
      }
    }
    // Causal mask, only where some key lies past the warp's first row (the diagonal tiles).
    if (kt + kKeys - 1 > p.pos0 + r0) {
#pragma unroll
      for (int j = 0; j < kKeys / 8; ++j)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int row = r0 + g + (i / 2) * 8, key = kt + j * 8 + 2 * c + (i % 2);
          if (key > p.pos0 + row) s[j][i] = -INFINITY;
        }
    }
    // Online softmax in the exp2 domain (rows g and g + 8 of the warp's tile).
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) mx[i / 2] = fmaxf(mx[i / 2], s[j][i]);
    float corr[2], base[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float m_new = fmaxf(m[r], mx[r] * p.scale_log2);
      base[r] = m_new == -INFINITY ? 0.0f : m_new;  // a fully masked row stays at zero
      corr[r] = fast_exp2(m[r] - base[r]);
      m[r] = m_new;
      l[r] *= corr[r];
    }
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        s[j][i] = fast_exp2(fmaf(s[j][i], p.scale_log2, -base[i / 2]));
        l[i / 2] += s[j][i];
      }
#pragma unroll
    for (int dn = 0; dn < D / 8; ++dn)
#pragma unroll
      for (int i = 0; i < 4; ++i) o[dn][i] *= corr[i / 2];
        // O += P V: the score accumulators of two adjacent key groups form one A fragment.
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
      const uint32_t pa[4] = {pack2<KT>(s[2 * kk][0], s[2 * kk][1]),
                              pack2<KT>(s[2 * kk][2], s[2 * kk][3]),
                              pack2<KT>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack2<KT>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dn = 0; dn < D / 8; dn += 2) {
        uint32_t b[4];
        ldsm4<true>(b, stage + v_lane + (kk * 16 * S::kStride + dn * 8) * 2);
        mma<KT>(o[dn], pa, b[0], b[1]);
        mma<KT>(o[dn + 1], pa, b[2], b[3]);
      }
    }
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

template <typename KT, int D>
cudaError_t launch_d(const FlashParams& p, dim3 grid, cudaStream_t s) {
  // D = 128 needs more than the default 48 KB of shared memory: raise the limit once per device.
  static std::atomic<uint64_t> raised{0};  // bit d: done on device d
  const auto kernel = flash_kernel<KT, D>;
  int dev = 0;
  check_launch(cudaGetDevice(&dev));
  const uint64_t bit = dev < 64 ? uint64_t(1) << dev : 0;
  if (!(raised.load(std::memory_order_relaxed) & bit)) {
    check_launch(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Smem<D>::kBytes));
    raised.fetch_or(bit, std::memory_order_relaxed);
  }
  return launch_kernel(kernel, grid, kThreads, Smem<D>::kBytes, s, p);
}

template <typename KT>
cudaError_t launch(const AttentionArgs& a, cudaStream_t s) {
  FlashParams p{a.q,    a.k_cache, a.v_cache,    a.T,
                a.pos0, a.n_heads, a.n_kv_heads, a.scale * 1.4426950408889634f,
                a.out};
  const dim3 grid(a.n_heads, (a.T + kRowsPerBlock - 1) / kRowsPerBlock);
  const cudaError_t e =
      a.head_dim == 64 ? launch_d<KT, 64>(p, grid, s) : launch_d<KT, 128>(p, grid, s);
  check_launch(e);
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
