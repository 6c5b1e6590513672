// The down half of the MoE decode path and the weighted sum, in one launch: a warp computes one
// output row h of token t for all K routed experts (sum_j w_j * down_j[h] . act_j), so the K
// partial results never leave registers and are added in expert order, as the CPU reference does.
// The block stages the K intermediate vectors act_j [I] of its token in shared memory.
#include "kernels/cuda/gemv.cuh"
#include "kernels/cuda/launch.h"

namespace cs::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kRows = 2;   // output rows per warp: each staged input float4 serves both
constexpr int kMaxK = 8;   // experts per token this kernel takes
constexpr int kGroup = 4;  // experts whose chunks are in flight together
constexpr int kMaxSmem = 96 * 1024;

struct DownParams {
  const ExpertWeights* table;
  const int32_t* ids;    // [T][K]
  const float* weights;  // [T][K]
  const float* act;      // [T*K][I]
  float* out;            // [T][H]
  int K, H, I;
  bool accumulate;
};

template <DType DT>
__global__ void __launch_bounds__(kWarps* kWarp) moe_down_kernel(DownParams p) {
  constexpr int WPC = weights_per_chunk<DT>();
  const int t = blockIdx.y, K = p.K, I = p.I;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int row0 = (blockIdx.x * kWarps + warp) * kRows;
  // The routing ids come from two kernels back (complete); the intermediate act from the kernel
  // just before: wait for it, but learn the expert views first.
  const int32_t* ids = p.ids + int64_t(t) * K;
  // Chunked reads need aligned rows: the dtype and I decide, then every present expert's pointer.
  bool vec = row_bytes<DT>(I) % 16 == 0 && I % WPC == 0 && I >= WPC;
  for (int j = 0; j < K; ++j) {
    const ExpertWeights& e = p.table[ids[j]];
    if (e.gate.data) vec = vec && gemv_vec_ok<DT>(e.down);
  }
  pdl_wait();
  pdl_trigger();
  extern __shared__ float4 smem4[];
  float* xs = reinterpret_cast<float*>(smem4);  // [K][I], chunk-interleaved per expert
  float* sx = xs + K * I;                       // [K][I/32]
  stage_input<DT>(p.act + int64_t(t) * K * I, I, K, vec, xs, sx);
  if (row0 >= p.H) return;
  const int nch = vec ? I / WPC : 0;
  float y[kRows][kMaxK];
#pragma unroll
  for (int j0 = 0; j0 < kMaxK; j0 += kGroup) {
    if (j0 >= K) break;
    MatView mv[kGroup];
#pragma unroll
    for (int g = 0; g < kGroup; ++g) {
      const int j = j0 + g;
      mv[g] = MatView{};
      if (j < K) {
        const ExpertWeights& e = p.table[ids[j]];
        if (e.gate.data) mv[g] = e.down;
      }
    }
    float acc[kRows][kGroup] = {};
    for (int c = lane; c < nch; c += kWarp) {
      Chunk ch[kGroup][kRows];
#pragma unroll
      for (int g = 0; g < kGroup; ++g)
#pragma unroll
        for (int r = 0; r < kRows; ++r)
          if (mv[g].data && row0 + r < p.H) ch[g][r] = load_chunk<DT>(mv[g], row0 + r, c);
#pragma unroll
      for (int g = 0; g < kGroup; ++g) {
        if (!mv[g].data) continue;
        const int j = j0 + g;
        float4 xv[float4_per_chunk<DT>()];
        load_inputs<DT>(smem4 + j * (I / 4), nch, c, xv);
        const float sxc = DT == DType::kQ4 ? sx[j * (I / 32) + c] : 0.0f;
#pragma unroll
        for (int r = 0; r < kRows; ++r)
          if (row0 + r < p.H)
            acc[r][g] += chunk_value<DT>(ch[g][r], xv, sxc, mv[g].mins != nullptr);
      }
    }
    if (!vec) {  // unaligned rows of a float dtype: plain layout, one element at a time
#pragma unroll
      for (int g = 0; g < kGroup; ++g)
        if (mv[g].data)
#pragma unroll
          for (int r = 0; r < kRows; ++r)
            if (row0 + r < p.H)
              for (int c = lane; c < I; c += kWarp)
                acc[r][g] += load_weight(mv[g], row0 + r, c) * xs[(j0 + g) * I + c];
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int g = 0; g < kGroup; ++g) y[r][j0 + g] = warp_sum(acc[r][g]);
  }
  if (lane == 0)
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      if (row0 + r >= p.H) continue;
      float* o = p.out + int64_t(t) * p.H + row0 + r;
      float v = p.accumulate ? *o : 0.0f;
#pragma unroll
      for (int j = 0; j < kMaxK; ++j)
        if (j < K && p.table[ids[j]].gate.data) v += p.weights[int64_t(t) * K + j] * y[r][j];
      *o = v;
    }
}

size_t down_smem(const MoeArgs& a) {
  return gemv_smem_bytes(a.dtype, int64_t(a.k) * a.inter);
}

}  // namespace

cudaError_t moe_down_init() {
  for (auto f :
       {moe_down_kernel<DType::kF32>, moe_down_kernel<DType::kF16>, moe_down_kernel<DType::kBF16>,
        moe_down_kernel<DType::kQ8>, moe_down_kernel<DType::kQ4>}) {
    const cudaError_t e =
        cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSmem);
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

bool moe_down_fused_ok(const MoeArgs& a) {
  return a.k >= 1 && a.k <= kMaxK && down_smem(a) <= size_t(kMaxSmem) && a.T <= 65535;
}

cudaError_t moe_down_fused(const MoeArgs& a, const float* act, cudaStream_t s) {
  DownParams p{a.table, a.ids, a.weights, act, a.out, a.k, a.hidden, a.inter, a.accumulate};
  const dim3 grid((a.hidden + kWarps * kRows - 1) / (kWarps * kRows), a.T);
  const size_t smem = down_smem(a);
  switch (a.dtype) {
    case DType::kF32:
      check_launch(launch_kernel(moe_down_kernel<DType::kF32>, grid, kWarps * kWarp, smem, s, p));
      break;
    case DType::kF16:
      check_launch(launch_kernel(moe_down_kernel<DType::kF16>, grid, kWarps * kWarp, smem, s, p));
      break;
    case DType::kBF16:
      check_launch(launch_kernel(moe_down_kernel<DType::kBF16>, grid, kWarps * kWarp, smem, s, p));
      break;
    case DType::kQ8:
      check_launch(launch_kernel(moe_down_kernel<DType::kQ8>, grid, kWarps * kWarp, smem, s, p));
      break;
    case DType::kQ4:
      check_launch(launch_kernel(moe_down_kernel<DType::kQ4>, grid, kWarps * kWarp, smem, s, p));
      break;
  }
  return cudaGetLastError();
}

}  // namespace cs::cuda
