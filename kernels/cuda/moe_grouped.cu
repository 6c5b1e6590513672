// Grouped INT4 GEMM for MoE prefill: the (token, expert) pairs of a layer sorted by expert, then
// for each expert a tiled GEMM over its rows that dequantizes Q4 weights into shared memory and
// multiplies on tensor cores (mma.sync m16n8k16 bf16, fp32 accumulation; sm_80 and later, so the
// same code serves sm_89 and sm_90). Activations stream in by cp.async three steps deep, weights
// are dequantized one step ahead without integer-to-float conversions (store_dequant). Nothing
// goes back to the host: tile lists are built on the device, so the grid is sized for the worst
// case and surplus blocks exit.
//
//   route:   counts, offsets, per-expert tile starts, perm[slot] = pair, inv[pair] = slot
//   gather:  xs [P][H] bf16, the input row of each sorted pair
//   gate_up: act [P][I] bf16 = silu(xs Wg^T) * (xs Wu^T)       (both halves in one block)
//   down:    y [P][H] f32 = act Wd^T
//   combine: out[t] (+)= sum_j w[t][j] y[inv[t*K+j]] in expert order, as the CPU reference
// P = T*K pairs. Fragment layouts as in flash_attention.cu.
#include <cuda_bf16.h>

#include "kernels/cuda/device.cuh"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/mma.cuh"

namespace cs::cuda {
namespace {

constexpr int kBM = 64;        // pair rows per tile
constexpr int kBN = 128;       // weight rows staged per k-step (gate+up: 64 of each)
constexpr int kBK = 64;        // two Q4 blocks of 32 weights per k-step
constexpr int kRow = kBK + 8;  // bf16 per shared row: 144 bytes, ldmatrix rows in distinct banks
constexpr int kAStages = 3, kBStages = 2;
constexpr int kThreads = 256;
constexpr int kSmem = (kAStages * kBM + kBStages * kBN) * kRow * 2;  // 63 KiB
constexpr int kMaxExperts = 1024;

struct Workspace {
  int32_t* counts;      // [E]
  int32_t* offsets;     // [E+1]
  int32_t* tile_start;  // [E+1]
  int32_t* perm;        // [P]
  int32_t* inv;         // [P]
  __nv_bfloat16* xs;    // [P][H]
  __nv_bfloat16* act;   // [P][I]
  float* y;             // [P][H]
};

size_t align256(size_t v) {
  return (v + 255) / 256 * 256;
}

Workspace carve(void* base, int P, int E, int I, int H) {
  uint8_t* p = static_cast<uint8_t*>(base);
  Workspace w;
  auto take = [&](size_t bytes) {
    uint8_t* r = p;
    p += align256(bytes);
    return r;
  };
  w.counts = reinterpret_cast<int32_t*>(take(size_t(E) * 4));
  w.offsets = reinterpret_cast<int32_t*>(take(size_t(E + 1) * 4));
  w.tile_start = reinterpret_cast<int32_t*>(take(size_t(E + 1) * 4));
  w.perm = reinterpret_cast<int32_t*>(take(size_t(P) * 4));
  w.inv = reinterpret_cast<int32_t*>(take(size_t(P) * 4));
  w.xs = reinterpret_cast<__nv_bfloat16*>(take(size_t(P) * H * 2));
  w.act = reinterpret_cast<__nv_bfloat16*>(take(size_t(P) * I * 2));
  w.y = reinterpret_cast<float*>(take(size_t(P) * H * 4));
  return w;
}

// One block: histogram, scans, scatter. P is at most T*K of one prefill chunk.
__global__ void route_kernel(const int32_t* ids, int P, int E, Workspace w) {
  pdl_wait();
  pdl_trigger();
  __shared__ int cnt[kMaxExperts], cursor[kMaxExperts];
  for (int e = threadIdx.x; e < E; e += blockDim.x) cnt[e] = cursor[e] = 0;
  __syncthreads();
  for (int p = threadIdx.x; p < P; p += blockDim.x) atomicAdd(&cnt[ids[p]], 1);
  __syncthreads();
  if (threadIdx.x == 0) {  // E <= 1024: a serial scan is a few microseconds at most
    int off = 0, tiles = 0;
    for (int e = 0; e < E; ++e) {
      w.counts[e] = cnt[e];
      w.offsets[e] = off;
      w.tile_start[e] = tiles;
      cursor[e] = off;
      off += cnt[e];
      tiles += (cnt[e] + kBM - 1) / kBM;
    }
    w.offsets[E] = off;
    w.tile_start[E] = tiles;
  }
  __syncthreads();
  for (int p = threadIdx.x; p < P; p += blockDim.x) {
    const int slot = atomicAdd(&cursor[ids[p]], 1);
    w.perm[slot] = p;
    w.inv[p] = slot;
  }
}

// One thread per 8 values: two 16-byte reads of the token's row, one 16-byte bf16 write.
__global__ void gather_kernel(const float* x, int K, int H, int P, Workspace w) {
  pdl_wait();
  pdl_trigger();
  const int per_row = H / 8, i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= P * per_row) return;
  const int slot = i / per_row, h = (i % per_row) * 8;
  const float4* src = reinterpret_cast<const float4*>(x + int64_t(w.perm[slot] / K) * H + h);
  const float4 a = src[0], b = src[1];
  *reinterpret_cast<uint4*>(w.xs + int64_t(slot) * H + h) =
      make_uint4(pack2<__nv_bfloat16>(a.x, a.y), pack2<__nv_bfloat16>(a.z, a.w),
                 pack2<__nv_bfloat16>(b.x, b.y), pack2<__nv_bfloat16>(b.z, b.w));
}

// One 32-weight Q4 chunk as loaded: codes and the raw fp16 scale (and min). Converted only when
// it is dequantized, an iteration after its load, so the load's latency is not waited for early.
struct QRaw {
  uint4 w;
  uint16_t d, m;
};

__device__ __forceinline__ QRaw load_qraw(const MatView& v, int row, int chunk, bool ok) {
  QRaw q{make_uint4(0, 0, 0, 0), 0, 0};
  if (!ok) return q;  // zero codes and scales: zero weights
  q.w = __ldcs(reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(v.data) +
                                              int64_t(row) * (v.cols / 2) + chunk * 16));
  const int64_t g = int64_t(row) * (v.cols / v.group) + int64_t(chunk) * 32 / v.group;
  q.d = __ldg(v.scales + g);
  if (v.mins) q.m = __ldg(v.mins + g);
  return q;
}

__device__ __forceinline__ __nv_bfloat162 as_bf162(uint32_t u) {
  return *reinterpret_cast<const __nv_bfloat162*>(&u);
}
__device__ __forceinline__ uint32_t as_u32(__nv_bfloat162 v) {
  return *reinterpret_cast<const uint32_t*>(&v);
}

// Writes the chunk's 32 weights as bf16 at dst (shared memory), without integer-to-float
// conversions: a code q in the low mantissa bits of the bf16 pattern 0x4300 is 128 + q exactly,
// minus 136 (symmetric: q - 8) or 128 (asymmetric) is exact, and the scale goes in as a high
// and a low bf16 part, so each weight is d * q + m rounded to bf16 about once.
__device__ __forceinline__ void store_dequant(const QRaw& q, bool asym, __nv_bfloat16* dst) {
  const float d = f16(q.d);
  const __nv_bfloat16 dh = __float2bfloat16_rn(d);
  const __nv_bfloat16 dl = __float2bfloat16_rn(d - __bfloat162float(dh));
  const __nv_bfloat162 dh2(dh, dh), dl2(dl, dl);
  const __nv_bfloat16 mb = __float2bfloat16_rn(asym ? f16(q.m) : 0.0f);
  const __nv_bfloat162 m2(mb, mb);
  const __nv_bfloat16 base = __float2bfloat16_rn(asym ? 128.0f : 136.0f);
  const __nv_bfloat162 base2(base, base);
  const uint32_t words[4] = {q.w.x, q.w.y, q.w.z, q.w.w};
  uint32_t out[16];
#pragma unroll
  for (int p = 0; p < 8; ++p) {
    // Bytes 2p and 2p + 1 hold weights (2p, 2p + 1) in their low nibbles and (2p + 16,
    // 2p + 17) in their high nibbles; place them at bits 0 and 16.
    const uint32_t x = __byte_perm(words[p / 2], 0, p % 2 ? 0x4342 : 0x4140);
    const uint32_t lo = (x & 0x000F000Fu) | 0x43004300u;
    const uint32_t hi = ((x >> 4) & 0x000F000Fu) | 0x43004300u;
    const __nv_bfloat162 tl = __hsub2(as_bf162(lo), base2), th = __hsub2(as_bf162(hi), base2);
    out[p] = as_u32(__hfma2(tl, dh2, __hfma2(tl, dl2, m2)));
    out[p + 8] = as_u32(__hfma2(th, dh2, __hfma2(th, dl2, m2)));
  }
  uint4* o = reinterpret_cast<uint4*>(dst);
#pragma unroll
  for (int i = 0; i < 4; ++i)
    o[i] = make_uint4(out[4 * i], out[4 * i + 1], out[4 * i + 2], out[4 * i + 3]);
}

// A tile of kBM sorted pairs of one expert times kBN weight rows. DUAL: the rows are 64 gate rows
// and the 64 matching up rows, and the block writes act = silu(gate) * up for 64 columns;
// otherwise 128 rows of the down matrix and the block writes y for 128 columns.
//
// Pipeline over k-steps of kBK: the activations go global -> shared by cp.async, kAStages deep;
// the Q4 weights are loaded into registers two steps ahead, dequantized to bf16 in shared memory
// one step ahead (kBStages buffers), so one barrier per step separates writers from readers.
// Fragments come from shared memory by ldmatrix.
template <bool DUAL>
__global__ void __launch_bounds__(kThreads, 2)
    grouped_kernel(const ExpertWeights* table, int E, int N, int C, const __nv_bfloat16* a_in,
                   Workspace w) {
  pdl_wait();
  pdl_trigger();
  extern __shared__ __align__(16) uint8_t smem[];
  __nv_bfloat16* as = reinterpret_cast<__nv_bfloat16*>(smem);  // [kAStages][kBM][kRow]
  __nv_bfloat16* bs = as + kAStages * kBM * kRow;              // [kBStages][kBN][kRow]
  const int tile = blockIdx.y;
  if (tile >= w.tile_start[E]) return;
  int lo = 0, hi = E - 1;  // the expert whose tiles include `tile`
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (w.tile_start[mid] <= tile)
      lo = mid;
    else
      hi = mid - 1;
  }
  const int e = lo;
  const ExpertWeights& ew = table[e];
  if (ew.gate.data == nullptr) return;
  const int rows = w.counts[e];
  const int m0 = (tile - w.tile_start[e]) * kBM;  // first row within the expert
  const int slot0 = w.offsets[e] + m0;
  const int n0 = blockIdx.x * (DUAL ? kBN / 2 : kBN);
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, g = lane / 4, c = lane % 4;
  const int wm = warp / 4, wn = warp % 4;  // 2 x 4 warps: 32 rows x 4 fragments of 8 columns
  float acc[2][4][4] = {};
  // Per thread: two 16-byte pieces of the A tile and one 32-weight chunk of the B tile.
  const int b_row = threadIdx.x / 2, b_half = threadIdx.x % 2;
  const MatView& bmv = DUAL ? (b_row < kBN / 2 ? ew.gate : ew.up) : ew.down;
  const int b_n = n0 + (DUAL ? b_row % (kBN / 2) : b_row);
  const bool asym = bmv.mins != nullptr;
  const int nk = (C + kBK - 1) / kBK;
  auto load_a = [&](int kb) {
    if (kb < nk) {
      __nv_bfloat16* dst = as + (kb % kAStages) * kBM * kRow;
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int item = threadIdx.x + i * kThreads, r = item / 8, col = kb * kBK + (item % 8) * 8;
        const bool ok = m0 + r < rows && col < C;
        const __nv_bfloat16* src = ok ? a_in + int64_t(slot0 + r) * C + col : a_in;
        cp_async16(smem_u32(dst + r * kRow + (item % 8) * 8), src, ok);
      }
    }
    cp_async_commit();  // an empty group past the end keeps the wait count uniform
  };
  auto load_b = [&](int kb) {
    const int chunk = kb * 2 + b_half;
    return load_qraw(bmv, b_n, chunk, kb < nk && b_n < N && chunk * 32 < C);
  };
  auto b_stage = [&](int kb) { return bs + (kb % kBStages) * kBN * kRow; };
  load_a(0);
  load_a(1);
  store_dequant(load_b(0), asym, b_stage(0) + b_row * kRow + b_half * 32);
  QRaw cur = load_b(1);
  // ldmatrix row addresses of this lane within a 16 x 16 piece: A (rows 0-7 | 8-15, k 0-7 | 8-15
  // in fragment order a0..a3) and B (two 8-row fragments, k 0-7 | 8-15 each: b0, b1, b0', b1').
  const int a_r = (lane % 8) + ((lane / 8) % 2) * 8, a_k = (lane / 16) * 8;
  const int b_r = (lane % 8) + (lane / 16) * 8, b_k = ((lane / 8) % 2) * 8;
  for (int kb = 0; kb < nk; ++kb) {
    cp_async_wait<1>();  // this step's activations have landed (the next step's may not)
    __syncthreads();     // ... for every thread; and step kb - 1's buffers are free
    load_a(kb + 2);
    const QRaw next = load_b(kb + 2);
    const __nv_bfloat16* at = as + (kb % kAStages) * kBM * kRow;
    const __nv_bfloat16* bt = b_stage(kb);
#pragma unroll
    for (int ks = 0; ks < kBK; ks += 16) {
      uint32_t af[2][4], bf[4][2];
#pragma unroll
      for (int mf = 0; mf < 2; ++mf)
        ldsm4<false>(af[mf], smem_u32(at + (wm * 32 + mf * 16 + a_r) * kRow + ks + a_k));
#pragma unroll
      for (int pair = 0; pair < 2; ++pair) {
        const int nb = DUAL ? pair * (kBN / 2) + wn * 16 : wn * 32 + pair * 16;
        uint32_t r[4];
        ldsm4<false>(r, smem_u32(bt + (nb + b_r) * kRow + ks + b_k));
        bf[2 * pair][0] = r[0];
        bf[2 * pair][1] = r[1];
        bf[2 * pair + 1][0] = r[2];
        bf[2 * pair + 1][1] = r[3];
      }
#pragma unroll
      for (int nf = 0; nf < 4; ++nf)
#pragma unroll
        for (int mf = 0; mf < 2; ++mf)
          mma<__nv_bfloat16>(acc[mf][nf], af[mf], bf[nf][0], bf[nf][1]);
    }
    if (kb + 1 < nk) store_dequant(cur, asym, b_stage(kb + 1) + b_row * kRow + b_half * 32);
    cur = next;
  }
#pragma unroll
  for (int mf = 0; mf < 2; ++mf)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = wm * 32 + mf * 16 + g + half * 8;
      if (m0 + r >= rows) continue;
      const int64_t slot = slot0 + r;
      if constexpr (DUAL) {
#pragma unroll
        for (int nf = 0; nf < 2; ++nf) {
          const int n = n0 + wn * 16 + nf * 8 + 2 * c;
#pragma unroll
          for (int i = 0; i < 2; ++i) {
            if (n + i >= N) continue;
            const float gv = acc[mf][nf][half * 2 + i], uv = acc[mf][nf + 2][half * 2 + i];
            w.act[slot * N + n + i] = __float2bfloat16_rn(gv / (1.0f + expf(-gv)) * uv);
          }
        }
      } else {
#pragma unroll
        for (int nf = 0; nf < 4; ++nf) {
          const int n = n0 + wn * 32 + nf * 8 + 2 * c;
#pragma unroll
          for (int i = 0; i < 2; ++i)
            if (n + i < N) w.y[slot * N + n + i] = acc[mf][nf][half * 2 + i];
        }
      }
    }
}

// One thread per 4 values of a token's output row.
__global__ void combine_kernel(const ExpertWeights* table, const int32_t* ids, const float* weights,
                               int T, int K, int H, bool accumulate, Workspace w, float* out) {
  pdl_wait();
  pdl_trigger();
  const int per_row = H / 4, i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= T * per_row) return;
  const int t = i / per_row, h = (i % per_row) * 4;
  float4* o = reinterpret_cast<float4*>(out + int64_t(t) * H + h);
  float4 v = accumulate ? *o : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  for (int j = 0; j < K; ++j) {
    const int p = t * K + j;
    if (table[ids[p]].gate.data == nullptr) continue;
    const float wt = weights[p];
    const float4 y = *reinterpret_cast<const float4*>(w.y + int64_t(w.inv[p]) * H + h);
    v.x += wt * y.x;
    v.y += wt * y.y;
    v.z += wt * y.z;
    v.w += wt * y.w;
  }
  *o = v;
}

}  // namespace

size_t moe_grouped_workspace_bytes(int T, int K, int n_experts, int inter, int hidden) {
  const size_t P = size_t(T) * K, E = size_t(n_experts);
  return align256(E * 4) + 2 * align256((E + 1) * 4) + 2 * align256(P * 4) +
         align256(P * hidden * 2) + align256(P * inter * 2) + align256(P * hidden * 4);
}

bool moe_grouped_supported(const MoeArgs& a) {
  return a.dtype == DType::kQ4 && a.n_experts <= kMaxExperts && a.hidden % 32 == 0 &&
         a.inter % 32 == 0 && a.k >= 1;
}

cudaError_t moe_grouped(const MoeArgs& a, void* workspace, cudaStream_t s) {
  if (!moe_grouped_supported(a)) return cudaErrorInvalidValue;
  const int P = a.T * a.k, E = a.n_experts, H = a.hidden, I = a.inter;
  if (P <= 0) return cudaSuccess;
  Workspace w = carve(workspace, P, E, I, H);
  check_launch(launch_kernel(route_kernel, 1, 1024, 0, s, a.ids, P, E, w));
  check_launch(launch_kernel(gather_kernel, unsigned((P * (H / 8) + 255) / 256), 256, 0, s, a.x,
                             a.k, H, P, w));
  const int max_tiles = (P + kBM - 1) / kBM + E;
  if (max_tiles > 65535) return cudaErrorInvalidValue;
  for (auto f : {grouped_kernel<true>, grouped_kernel<false>})
    check_launch(cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
  check_launch(launch_kernel(grouped_kernel<true>, dim3((I + kBN / 2 - 1) / (kBN / 2), max_tiles),
                             kThreads, kSmem, s, a.table, E, I, H, w.xs, w));
  check_launch(launch_kernel(grouped_kernel<false>, dim3((H + kBN - 1) / kBN, max_tiles), kThreads,
                             kSmem, s, a.table, E, H, I, w.act, w));
  check_launch(launch_kernel(combine_kernel, unsigned((a.T * (H / 4) + 255) / 256), 256, 0, s,
                             a.table, a.ids, a.weights, a.T, a.k, H, a.accumulate, w, a.out));
  return cudaGetLastError();
}

}  // namespace cs::cuda
