// GEMV for decode: weights read once per token, every dtype. One kernel template serves dense
// matrices and the gate+up half of MoE experts (fused with SiLU-multiply) for every (token,
// expert) pair of a layer in one launch; moe_down.cu does the down half and the weighted sum.
//
// A block of 8 warps stages its input row in shared memory; each warp computes kRows output rows
// (of each matrix), each lane reading whole 16-byte chunks of the weight rows (gemv.cuh). The
// first chunks are loaded before the input is staged, so the weight stream starts at once.
#include "kernels/cuda/gemv.cuh"
#include "kernels/cuda/launch.h"

namespace cs::cuda {
namespace {

constexpr int kWarps = 8;   // warps per block
constexpr int kRows = 2;    // output rows per warp (per matrix)
constexpr int kUnroll = 2;  // chunks per lane and row in flight
constexpr int kMaxSmem = 96 * 1024;

enum class Mode { kDense, kGateUp, kDown };

struct Params {
  MatView w;                             // kDense
  const ExpertWeights* table = nullptr;  // MoE modes: [E]
  const int32_t* ids = nullptr;          // MoE modes: [T][K], one (token, expert) pair each
  int K = 1;
  const float* x = nullptr;  // kDense: [T][C]; kGateUp: [T][H]; kDown: act [T*K][I]
  float* out = nullptr;      // kDense: [T][N]; kGateUp: act [T*K][I]; kDown: y [T*K][H]
  int N = 0, C = 0;
};

template <DType DT, Mode M>
__global__ void __launch_bounds__(kWarps* kWarp) gemv_kernel(Params p) {
  constexpr int NM = M == Mode::kGateUp ? 2 : 1;  // matrices per output row
  constexpr int WPC = weights_per_chunk<DT>();
  const int pair = blockIdx.y;
  // The MoE modes find their matrices through the routing ids: kGateUp's come from the kernel
  // just before (wait first); kDown's from two kernels back (complete once this one runs).
  if constexpr (M == Mode::kGateUp) pdl_wait();
  MatView mats[NM];
  const float* x;
  if constexpr (M == Mode::kDense) {
    mats[0] = p.w;
    x = p.x + int64_t(pair) * p.C;
  } else {
    const ExpertWeights& e = p.table[p.ids[pair]];
    if (e.gate.data == nullptr) return;  // computed elsewhere (offload); uniform per block
    mats[0] = M == Mode::kGateUp ? e.gate : e.down;
    mats[NM - 1] = M == Mode::kGateUp ? e.up : mats[0];
    x = p.x + int64_t(M == Mode::kGateUp ? pair / p.K : pair) * p.C;
  }
  const int C = p.C, N = p.N;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int row0 = (blockIdx.x * kWarps + warp) * kRows;
  bool vec = true;
#pragma unroll
  for (int m = 0; m < NM; ++m) vec = vec && gemv_vec_ok<DT>(mats[m]);
  const int nch = vec ? C / WPC : 0;
  // First batch of weights in flight before the input is staged.
  Chunk ch[NM][kRows][kUnroll];
  auto load = [&](int base) {
#pragma unroll
    for (int m = 0; m < NM; ++m)
#pragma unroll
      for (int r = 0; r < kRows; ++r)
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const int c = base + u * kWarp;
          if (c < nch && row0 + r < N) ch[m][r][u] = load_chunk<DT>(mats[m], row0 + r, c);
        }
  };
  load(lane);  // constant weights: before waiting for the input
  if constexpr (M != Mode::kGateUp) pdl_wait();
  pdl_trigger();
  extern __shared__ float4 smem4[];
  float* xs = reinterpret_cast<float*>(smem4);
  float* sx = xs + C;
  stage_input<DT>(x, C, 1, vec, xs, sx);
  if (row0 >= N) return;
  float acc[NM][kRows] = {};
  for (int base = lane; base < nch; base += kWarp * kUnroll) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int c = base + u * kWarp;
      if (c >= nch) continue;
      float4 xv[float4_per_chunk<DT>()];
      load_inputs<DT>(smem4, nch, c, xv);  // once per chunk, for every row of this warp
      const float sxc = DT == DType::kQ4 ? sx[c] : 0.0f;
#pragma unroll
      for (int m = 0; m < NM; ++m)
#pragma unroll
        for (int r = 0; r < kRows; ++r)
          if (row0 + r < N)
            acc[m][r] += chunk_value<DT>(ch[m][r][u], xv, sxc, mats[m].mins != nullptr);
    }
    if (base + kWarp * kUnroll < nch) load(base + kWarp * kUnroll);
  }
  if (!vec) {  // rows not 16-byte aligned (a float dtype with odd C): one element at a time
#pragma unroll
    for (int m = 0; m < NM; ++m)
#pragma unroll
      for (int r = 0; r < kRows; ++r)
        if (row0 + r < N)
          for (int c = lane; c < C; c += kWarp)
            acc[m][r] += load_weight(mats[m], row0 + r, c) * xs[c];
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    float v[NM];
#pragma unroll
    for (int m = 0; m < NM; ++m) v[m] = warp_sum(acc[m][r]);
    if (lane == 0 && row0 + r < N) {
      float* o = p.out + int64_t(pair) * N + row0 + r;
      if constexpr (M == Mode::kGateUp)
        *o = silu(v[0]) * v[NM - 1];
      else
        *o = v[0];
    }
  }
}

// out[t][h] (+)= sum_j weights[t][j] * y[t*K+j][h] over present experts, j in order (as the CPU).
__global__ void moe_combine_kernel(const ExpertWeights* table, const int32_t* ids,
                                   const float* weights, const float* y, int T, int K, int H,
                                   bool accumulate, float* out) {
  pdl_wait();
  pdl_trigger();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(T) * H) return;
  const int t = int(i / H), h = int(i % H);
  float acc = accumulate ? out[i] : 0.0f;
  for (int j = 0; j < K; ++j) {
    const int p = t * K + j;
    if (table[ids[p]].gate.data == nullptr) continue;
    acc += weights[p] * y[int64_t(p) * H + h];
  }
  out[i] = acc;
}

template <Mode M>
cudaError_t launch(DType dt, const Params& p, int pairs, cudaStream_t s) {
  const dim3 grid((p.N + kWarps * kRows - 1) / (kWarps * kRows), pairs);
  const size_t smem = gemv_smem_bytes(dt, p.C);
  switch (dt) {
    case DType::kF32:
      check_launch(launch_kernel(gemv_kernel<DType::kF32, M>, grid, kWarps * kWarp, smem, s, p));
      break;
    case DType::kF16:
      check_launch(launch_kernel(gemv_kernel<DType::kF16, M>, grid, kWarps * kWarp, smem, s, p));
      break;
    case DType::kBF16:
      check_launch(launch_kernel(gemv_kernel<DType::kBF16, M>, grid, kWarps * kWarp, smem, s, p));
      break;
    case DType::kQ8:
      check_launch(launch_kernel(gemv_kernel<DType::kQ8, M>, grid, kWarps * kWarp, smem, s, p));
      break;
    case DType::kQ4:
      check_launch(launch_kernel(gemv_kernel<DType::kQ4, M>, grid, kWarps * kWarp, smem, s, p));
      break;
  }
  return cudaGetLastError();
}

template <Mode M>
cudaError_t raise_smem_limit() {
  for (auto f :
       {gemv_kernel<DType::kF32, M>, gemv_kernel<DType::kF16, M>, gemv_kernel<DType::kBF16, M>,
        gemv_kernel<DType::kQ8, M>, gemv_kernel<DType::kQ4, M>}) {
    const cudaError_t e =
        cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSmem);
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

}  // namespace

int gemv_max_cols() {
  return int((kMaxSmem - 64) / 4 * 32 / 33 / 32 * 32);
}

cudaError_t gemv_init() {
  cudaError_t e = raise_smem_limit<Mode::kDense>();
  if (e == cudaSuccess) e = raise_smem_limit<Mode::kGateUp>();
  if (e == cudaSuccess) e = raise_smem_limit<Mode::kDown>();
  if (e == cudaSuccess) e = moe_down_init();
  return e;
}

cudaError_t gemv(const MatView& w, const float* x, int T, float* out, cudaStream_t s) {
  if (w.cols > gemv_max_cols() || T <= 0 || T > 65535) return cudaErrorInvalidValue;
  Params p;
  p.w = w;
  p.x = x;
  p.out = out;
  p.N = int(w.rows);
  p.C = int(w.cols);
  return launch<Mode::kDense>(w.dtype, p, T, s);
}

size_t moe_gemv_workspace_floats(int T, int K, int inter, int hidden) {
  return size_t(T) * K * (size_t(inter) + size_t(hidden));
}

cudaError_t moe_gemv(const MoeArgs& a, float* workspace, cudaStream_t s) {
  if (a.hidden > gemv_max_cols() || a.inter > gemv_max_cols() || a.T * a.k > 65535)
    return cudaErrorInvalidValue;
  const int pairs = a.T * a.k;
  float* act = workspace;
  Params p;
  p.table = a.table;
  p.ids = a.ids;
  p.K = a.k;
  p.x = a.x;
  p.out = act;
  p.N = a.inter;
  p.C = a.hidden;
  cudaError_t e = launch<Mode::kGateUp>(a.dtype, p, pairs, s);
  if (e != cudaSuccess) return e;
  // Down and the weighted sum in one launch when every expert's input fits shared memory.
  if (moe_down_fused_ok(a)) return moe_down_fused(a, act, s);
  float* y = workspace + size_t(pairs) * a.inter;
  p.x = act;
  p.out = y;
  p.N = a.hidden;
  p.C = a.inter;
  e = launch<Mode::kDown>(a.dtype, p, pairs, s);
  if (e != cudaSuccess) return e;
  const int64_t n = int64_t(a.T) * a.hidden;
  check_launch(launch_kernel(moe_combine_kernel, unsigned((n + 255) / 256), 256, 0, s, a.table,
                             a.ids, a.weights, y, a.T, a.k, a.hidden, a.accumulate, a.out));
  return cudaGetLastError();
}

}  // namespace cs::cuda
