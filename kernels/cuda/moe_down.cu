// The down half of the MoE decode path and the weighted sum, in one launch: a warp computes one
// output row h of token t for all K routed experts (sum_j w_j * down_j[h] . act_j), so the K
// partial results never leave registers and are added in expert order, as the CPU reference does.
// The block stages the K intermediate vectors act_j [I] of its token in shared memory.
#include "kernels/cuda/gemv.cuh"
#include "kernels/cuda/launch.h"

namespace cs::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kMaxK = 8;    // experts per token this kernel takes
constexpr int kGroup = 4;   // experts whose chunks are in flight together
constexpr int kUnroll = 2;  // chunks per lane and expert in flight
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
  const int row = blockIdx.x * kWarps + warp;
  const int32_t* ids = p.ids + int64_t(t) * K;
  extern __shared__ float4 smem4[];
  float* xs = reinterpret_cast<float*>(smem4);  // [K][I]
  float* sx = xs + K * I;                       // [K][I/32]
  stage_input<DT>(p.act + int64_t(t) * K * I, K * I, xs, sx);
  if (row >= p.H) return;
  float y[kMaxK];
#pragma unroll
  for (int j0 = 0; j0 < kMaxK; j0 += kGroup) {
    if (j0 >= K) break;
    MatView mv[kGroup];
    bool vec = true;
#pragma unroll
    for (int g = 0; g < kGroup; ++g) {
      const int j = j0 + g;
      mv[g] = MatView{};
      if (j < K) {
        const ExpertWeights& e = p.table[ids[j]];
        if (e.gate.data) mv[g] = e.down;
      }
      if (mv[g].data) vec = vec && gemv_vec_ok<DT>(mv[g]);
    }
    const int nch = vec ? I / WPC : 0;
    float acc[kGroup] = {};
    for (int base = lane; base < nch; base += kWarp * kUnroll) {
      Chunk ch[kGroup][kUnroll];
#pragma unroll
      for (int g = 0; g < kGroup; ++g)
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const int c = base + u * kWarp;
          if (mv[g].data && c < nch) ch[g][u] = load_chunk<DT>(mv[g], row, c);
        }
#pragma unroll
      for (int g = 0; g < kGroup; ++g)
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const int c = base + u * kWarp;
          const int j = j0 + g;
          if (mv[g].data && c < nch)
            acc[g] += chunk_value<DT>(ch[g][u], xs + j * I + c * WPC,
                                      DT == DType::kQ4 ? sx[j * (I / 32) + c] : 0.0f,
                                      mv[g].mins != nullptr);
        }
    }
    if (!vec) {  // unaligned rows of a float dtype
#pragma unroll
      for (int g = 0; g < kGroup; ++g)
        if (mv[g].data)
          for (int c = lane; c < I; c += kWarp)
            acc[g] += load_weight(mv[g], row, c) * xs[(j0 + g) * I + c];
    }
#pragma unroll
    for (int g = 0; g < kGroup; ++g) y[j0 + g] = warp_sum(acc[g]);
  }
  if (lane == 0) {
    float* o = p.out + int64_t(t) * p.H + row;
    float v = p.accumulate ? *o : 0.0f;
#pragma unroll
    for (int j = 0; j < kMaxK; ++j)
      if (j < K && p.table[ids[j]].gate.data) v += p.weights[int64_t(t) * K + j] * y[j];
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
  const dim3 grid((a.hidden + kWarps - 1) / kWarps, a.T);
  const size_t smem = down_smem(a);
  switch (a.dtype) {
    case DType::kF32:
      moe_down_kernel<DType::kF32><<<grid, kWarps * kWarp, smem, s>>>(p);
      break;
    case DType::kF16:
      moe_down_kernel<DType::kF16><<<grid, kWarps * kWarp, smem, s>>>(p);
      break;
    case DType::kBF16:
      moe_down_kernel<DType::kBF16><<<grid, kWarps * kWarp, smem, s>>>(p);
      break;
    case DType::kQ8:
      moe_down_kernel<DType::kQ8><<<grid, kWarps * kWarp, smem, s>>>(p);
      break;
    case DType::kQ4:
      moe_down_kernel<DType::kQ4><<<grid, kWarps * kWarp, smem, s>>>(p);
      break;
  }
  return cudaGetLastError();
}

}  // namespace cs::cuda
