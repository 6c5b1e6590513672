// The down half of the MoE decode path and the weighted sum, in one launch: a warp computes kRows
// output rows h of token t over all K routed experts, sum_j w_j * down_j[h] . act_j, so the K
// partial results never leave registers. The block stages the K intermediate vectors act_j [I]
// of its token in shared memory.
//
// For memory-level parallelism the (expert, chunk) pairs of a row are one flat list of K * I/WPC
// slots: lane l takes slots l, l + 32, ... (30B shape: 8 x 24 = 192 slots, 6 per lane), and a
// batch of kBatch slots for each of the kRows rows (8 loads of 16 bytes) is issued before any
// math. One row per warp and 8 warps per block (2 blocks per SM): the 30B shape's 2048 rows are
// 2048 warps, about 4 per scheduler. The block first reads every routed expert's view into shared
// memory (one parallel round trip, not K dependent ones), then requests its first batch of weights,
// and only then waits for the gate+up kernel that writes act.
#include "kernels/cuda/gemv.cuh"
#include "kernels/cuda/launch.h"

namespace cs::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kRows = 1;   // output rows per warp
constexpr int kBatch = 8;  // slots per lane and row in one batch
constexpr int kMaxK = 8;   // experts per token this kernel takes
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
__global__ void __launch_bounds__(kWarps* kWarp, 2) moe_down_kernel(DownParams p) {
  constexpr int WPC = weights_per_chunk<DT>();
  const int t = blockIdx.y, K = p.K, I = p.I;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int row0 = (blockIdx.x * kWarps + warp) * kRows;
  // The routing ids and weights come from two kernels back (complete once this kernel runs).
  __shared__ MatView views[kMaxK];
  __shared__ MatRef refs[kMaxK];
  __shared__ float wts[kMaxK];
  bool ok = true, has_mins = false;
  if (threadIdx.x < K) {
    const int j = threadIdx.x;
    const ExpertWeights& e = p.table[p.ids[int64_t(t) * K + j]];
    const bool present = e.gate.data != nullptr;
    views[j] = present ? e.down : MatView{};
    refs[j] = mat_ref<DT>(views[j]);
    wts[j] = present ? p.weights[int64_t(t) * K + j] : 0.0f;
    ok = !present || gemv_vec_ok<DT>(e.down);
    has_mins = present && e.down.mins != nullptr;
  }
  const bool asym = DT == DType::kQ4 && __syncthreads_or(has_mins);
  // Chunked reads need aligned rows of every present expert (and whole chunks of I).
  const bool vec = __syncthreads_and(ok) && I % WPC == 0 && I >= WPC;
  const int nch = vec ? I / WPC : 0, slots = K * nch;
  uint4 w[kRows][kBatch];
  uint32_t dm[kRows][kBatch];
  int js[kBatch], cs[kBatch];
  // The lane's next slot as (expert, chunk): slots advance by kWarp, so no division per slot.
  int nj = nch > 0 ? 0 : K, nc = lane;
  while (nj < K && nc >= nch) nc -= nch, ++nj;
  auto load = [&] {  // REQUIRES: row0 < H
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      js[u] = nj < K && views[nj].data ? nj : -1;
      cs[u] = nc;
      if (js[u] >= 0) {
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const int row = min(row0 + r, p.H - 1);  // rows past H: loaded, not stored
          w[r][u] = load_w(refs[nj], row, nc);
          dm[r][u] = load_dm<DT>(refs[nj], row, nc);
        }
      }
      nc += kWarp;
      while (nj < K && nc >= nch) nc -= nch, ++nj;
    }
  };
  if (row0 < p.H) load();  // constant weights, before waiting for act
  pdl_wait();
  pdl_trigger();
  extern __shared__ float4 smem4[];  // the K intermediate vectors (Staged's layouts)
  stage_input<DT>(p.act + int64_t(t) * K * I, I, K, vec, smem4);
  if (row0 >= p.H) return;
  float acc[kRows] = {};
  for (int base = lane; base < slots; base += kWarp * kBatch) {
    if (base != lane) load();
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int j = js[u], c = cs[u];
      if (j < 0) continue;
      XChunk<DT> xv;
      Staged<DT>(smem4, I, K, j, vec).load(c, xv);
      const float wj = wts[j];
#pragma unroll
      for (int r = 0; r < kRows; ++r) acc[r] += wj * chunk_value<DT>(w[r][u], dm[r][u], xv, asym);
    }
  }
  if (!vec) {  // unaligned rows of a float dtype: plain layout, one element at a time
    for (int j = 0; j < K; ++j)
      if (views[j].data)
#pragma unroll
        for (int r = 0; r < kRows; ++r)
          if (row0 + r < p.H) {
            const Staged<DT> in(smem4, I, K, j, false);
            float a = 0.0f;
            for (int c = lane; c < I; c += kWarp)
              a += load_weight(views[j], row0 + r, c) * in.value(c);
            acc[r] += wts[j] * a;
          }
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const float v = warp_sum(acc[r]);
    if (lane == 0 && row0 + r < p.H) {
      float* o = p.out + int64_t(t) * p.H + row0 + r;
      *o = p.accumulate ? *o + v : v;
    }
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
