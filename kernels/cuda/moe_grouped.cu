// Grouped INT4 GEMM for MoE prefill: the (token, expert) pairs of a layer sorted by expert, then
// for each expert a tiled GEMM over its rows that dequantizes Q4 weights into shared memory and
// multiplies on tensor cores (mma.sync m16n8k16 bf16, fp32 accumulation). Nothing goes back to
// the host: tile lists are built on the device, so the grid is sized for the worst case and
// surplus blocks exit.
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

namespace cs::cuda {
namespace {

constexpr int kBM = 64;   // pair rows per tile
constexpr int kBN = 128;  // weight rows staged per k-step (gate+up: 64 of each)
constexpr int kBK = 64;   // two Q4 blocks of 32 weights per k-step
constexpr int kPad = 8;   // bf16 elements of padding per smem row (distinct banks)
constexpr int kThreads = 256;
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

__global__ void gather_kernel(const float* x, int K, int H, int P, Workspace w) {
  pdl_wait();
  pdl_trigger();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(P) * H) return;
  const int slot = int(i / H), h = int(i % H);
  w.xs[i] = __float2bfloat16_rn(x[int64_t(w.perm[slot] / K) * H + h]);
}

__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t bf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// One 32-weight Q4 chunk of a weight row held in registers between its load and its dequantization
// into shared memory (the next k-step's loads overlap the current k-step's tensor-core work).
struct QChunk {
  uint4 w;
  float d, m;  // value = d * q + m (symmetric: m = -8 d)
};

__device__ __forceinline__ QChunk load_qchunk(const MatView& v, int64_t row, int chunk) {
  QChunk q;
  q.w = __ldcs(reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(v.data) +
                                              row * (v.cols / 2) + int64_t(chunk) * 16));
  const int64_t g = row * (v.cols / v.group) + int64_t(chunk) * 32 / v.group;
  q.d = f16(v.scales[g]);
  q.m = v.mins ? f16(v.mins[g]) : -8.0f * q.d;
  return q;
}

// Writes the 32 bf16 values of a chunk at dst (shared memory).
__device__ __forceinline__ void store_qchunk(const QChunk& q, __nv_bfloat16* dst) {
  const uint32_t words[4] = {q.w.x, q.w.y, q.w.z, q.w.w};
  uint32_t* out = reinterpret_cast<uint32_t*>(dst);
#pragma unroll
  for (int k = 0; k < 4; ++k)
#pragma unroll
    for (int b = 0; b < 4; b += 2) {  // bytes 4k+b, 4k+b+1: weights j, j+1 and j+16, j+17
      const uint32_t q0 = (words[k] >> (8 * b)) & 0xffu, q1 = (words[k] >> (8 * b + 8)) & 0xffu;
      const int j = 4 * k + b;
      out[j / 2] = bf16x2(q.d * float(q0 & 15u) + q.m, q.d * float(q1 & 15u) + q.m);
      out[(j + 16) / 2] = bf16x2(q.d * float(q0 >> 4) + q.m, q.d * float(q1 >> 4) + q.m);
    }
}

// A tile of kBM sorted pairs of one expert times kBN staged weight rows. DUAL: the staged rows are
// 64 gate rows and the 64 matching up rows, and the block writes act = silu(gate) * up for 64
// columns; otherwise 128 rows of the down matrix and the block writes y for 128 columns.
template <bool DUAL>
__global__ void __launch_bounds__(kThreads)
    grouped_kernel(const ExpertWeights* table, int E, int N, int C, const __nv_bfloat16* a_in,
                   Workspace w) {
  pdl_wait();
  pdl_trigger();
  __shared__ __align__(16) __nv_bfloat16 as[kBM][kBK + kPad];
  __shared__ __align__(16) __nv_bfloat16 bs[kBN][kBK + kPad];
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
  uint4 a_reg[2];
  QChunk b_reg;
  auto fetch = [&](int kb) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int item = threadIdx.x + i * kThreads, r = item / 8, col = kb * kBK + (item % 8) * 8;
      a_reg[i] = make_uint4(0, 0, 0, 0);
      if (m0 + r < rows && col < C)
        a_reg[i] = *reinterpret_cast<const uint4*>(a_in + int64_t(slot0 + r) * C + col);
    }
    const int chunk = kb * 2 + b_half;
    b_reg.w = make_uint4(0, 0, 0, 0);
    b_reg.d = b_reg.m = 0.0f;
    if (b_n < N && chunk * 32 < C) b_reg = load_qchunk(bmv, b_n, chunk);
  };
  auto store = [&] {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int item = threadIdx.x + i * kThreads;
      *reinterpret_cast<uint4*>(&as[item / 8][(item % 8) * 8]) = a_reg[i];
    }
    store_qchunk(b_reg, &bs[b_row][b_half * 32]);
  };
  const int nk = (C + kBK - 1) / kBK;
  fetch(0);
  store();
  __syncthreads();
  for (int kb = 0; kb < nk; ++kb) {
    if (kb + 1 < nk) fetch(kb + 1);  // in flight during the tensor-core work below
#pragma unroll
    for (int ks = 0; ks < kBK; ks += 16) {
      uint32_t af[2][4];
#pragma unroll
      for (int mf = 0; mf < 2; ++mf) {
        const int r = wm * 32 + mf * 16 + g;
        af[mf][0] = *reinterpret_cast<const uint32_t*>(&as[r][ks + 2 * c]);
        af[mf][1] = *reinterpret_cast<const uint32_t*>(&as[r + 8][ks + 2 * c]);
        af[mf][2] = *reinterpret_cast<const uint32_t*>(&as[r][ks + 2 * c + 8]);
        af[mf][3] = *reinterpret_cast<const uint32_t*>(&as[r + 8][ks + 2 * c + 8]);
      }
#pragma unroll
      for (int nf = 0; nf < 4; ++nf) {
        const int nb = DUAL ? (nf < 2 ? wn * 16 + nf * 8 : kBN / 2 + wn * 16 + (nf - 2) * 8)
                            : wn * 32 + nf * 8;
        const uint32_t b0 = *reinterpret_cast<const uint32_t*>(&bs[nb + g][ks + 2 * c]);
        const uint32_t b1 = *reinterpret_cast<const uint32_t*>(&bs[nb + g][ks + 2 * c + 8]);
#pragma unroll
        for (int mf = 0; mf < 2; ++mf) mma_bf16(acc[mf][nf], af[mf], b0, b1);
      }
    }
    __syncthreads();
    if (kb + 1 < nk) {
      store();
      __syncthreads();
    }
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

__global__ void combine_kernel(const ExpertWeights* table, const int32_t* ids, const float* weights,
                               int T, int K, int H, bool accumulate, Workspace w, float* out) {
  pdl_wait();
  pdl_trigger();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(T) * H) return;
  const int t = int(i / H), h = int(i % H);
  float v = accumulate ? out[i] : 0.0f;
  for (int j = 0; j < K; ++j) {
    const int p = t * K + j;
    if (table[ids[p]].gate.data == nullptr) continue;
    v += weights[p] * w.y[int64_t(w.inv[p]) * H + h];
  }
  out[i] = v;
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
  check_launch(launch_kernel(gather_kernel, unsigned((int64_t(P) * H + 255) / 256), 256, 0, s, a.x,
                             a.k, H, P, w));
  const int max_tiles = (P + kBM - 1) / kBM + E;
  if (max_tiles > 65535) return cudaErrorInvalidValue;
  check_launch(launch_kernel(grouped_kernel<true>, dim3((I + kBN / 2 - 1) / (kBN / 2), max_tiles),
                             kThreads, 0, s, a.table, E, I, H, w.xs, w));
  check_launch(launch_kernel(grouped_kernel<false>, dim3((H + kBN - 1) / kBN, max_tiles), kThreads,
                             0, s, a.table, E, H, I, w.act, w));
  const int64_t n = int64_t(a.T) * H;
  check_launch(launch_kernel(combine_kernel, unsigned((n + 255) / 256), 256, 0, s, a.table, a.ids,
                             a.weights, a.T, a.k, H, a.accumulate, w, a.out));
  return cudaGetLastError();
}

}  // namespace cs::cuda
