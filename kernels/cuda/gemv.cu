// GEMV for decode: weights read once per token, every dtype. One kernel template serves dense
// matrices and the gate+up half of MoE experts (fused with SiLU-multiply) for every (token,
// expert) pair of a layer in one launch; moe_down.cu does the down half and the weighted sum.
//
// The kernel is built to keep the memory system busy (docs/CUDA.md, "Decode GEMV"):
// - a warp owns kRows output rows (of each matrix) and issues all its 16-byte weight loads of a
//   batch (kRows x matrices x U chunks per lane: 16 loads of 512 bytes per warp) before any math;
// - constant weights are requested before the kernel waits for its predecessor (programmatic
//   dependent launch), so the first batch streams while the input is still being written;
// - the input is staged in shared memory once per block and the grid is persistent (at most the
//   blocks that fit the GPU at once, looping over row tiles), so large matrices such as lm_head
//   do not restage it thousands of times.
#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include "kernels/cuda/gemv.cuh"
#include "kernels/cuda/launch.h"

namespace cs::cuda {
namespace {

constexpr int kWarps = 4;  // warps per block
constexpr int kMaxSmem = 96 * 1024;

enum class Mode { kDense, kGateUp, kDown };

// A warp owns R output rows (of each matrix) and loads U chunks per lane and row in one batch:
// R x U x matrices = 16 loads per lane in flight. Short rows (few chunks per lane) take more
// rows per warp, so the batch stays full (30B gate+up: 2 chunks per lane, 4 rows of 2 matrices).
template <Mode M>
constexpr int matrices() {
  return M == Mode::kGateUp ? 2 : 1;
}

struct Params {
  MatView w;                             // kDense
  const ExpertWeights* table = nullptr;  // MoE modes: [E]
  const int32_t* ids = nullptr;          // MoE modes: [T][K], one (token, expert) pair each
  int K = 1;
  const float* x = nullptr;  // kDense: [T][C]; kGateUp: [T][H]; kDown: act [T*K][I]
  float* out = nullptr;      // kDense: [T][N]; kGateUp: act [T*K][I]; kDown: y [T*K][H]
  int N = 0, C = 0;
};

template <DType DT, Mode M, int kRows, int U>
__global__ void __launch_bounds__(kWarps* kWarp, is_quant<DT>() ? 3 : 4) gemv_kernel(Params p) {
  constexpr int NM = matrices<M>();  // matrices per output row
  constexpr int WPC = weights_per_chunk<DT>(), kRowsPerBlock = kWarps * kRows;
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
  bool vec = true;
#pragma unroll
  for (int m = 0; m < NM; ++m) vec = vec && gemv_vec_ok<DT>(mats[m]);
  const bool asym = DT == DType::kQ4 && mats[0].mins != nullptr;
  const int nch = vec ? C / WPC : 0;
  const int tiles = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  int tile = blockIdx.x;
  MatRef mr[NM];
#pragma unroll
  for (int m = 0; m < NM; ++m) mr[m] = mat_ref<DT>(mats[m]);
  uint4 w[NM][kRows][U];
  uint32_t dm[NM][kRows][U];
  // Every load of one batch, issued before any of them is used. Chunks past the row and rows past
  // the matrix load a valid neighbour (clamped indices) and are not used: no branch per load, so
  // the batch issues back to back.
  auto load = [&](int row0, int base) {
    if (nch == 0) return;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int c = min(base + u * kWarp, nch - 1);
#pragma unroll
      for (int m = 0; m < NM; ++m)
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const int row = min(row0 + r, N - 1);
          w[m][r][u] = load_w(mr[m], row, c);
          dm[m][r][u] = load_dm<DT>(mr[m], row, c);
        }
    }
  };
  bool preloaded = false;
  if (tile < tiles) {  // constant weights: before waiting for the input
    load(tile * kRowsPerBlock + warp * kRows, lane);
    preloaded = true;
  }
  if constexpr (M != Mode::kGateUp) pdl_wait();
  pdl_trigger();
  extern __shared__ float4 smem4[];
  stage_input<DT>(x, C, 1, vec, smem4);
  const Staged<DT> in(smem4, C, 1, 0, vec);
  for (; tile < tiles; tile += gridDim.x) {
    const int row0 = tile * kRowsPerBlock + warp * kRows;
    float acc[NM][kRows] = {};
    for (int base = lane; base < nch; base += kWarp * U) {
      if (!preloaded) load(row0, base);
      preloaded = false;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int c = base + u * kWarp;
        if (c >= nch) continue;
        XChunk<DT> xv;
        in.load(c, xv);  // once per chunk, for every row of this warp
#pragma unroll
        for (int m = 0; m < NM; ++m)
#pragma unroll
          for (int r = 0; r < kRows; ++r)
            acc[m][r] += chunk_value<DT>(w[m][r][u], dm[m][r][u], xv, asym);
      }
    }
    preloaded = false;
    if (row0 >= N) continue;
    if (!vec) {  // rows not 16-byte aligned (a float dtype with odd C): one element at a time
#pragma unroll
      for (int m = 0; m < NM; ++m)
#pragma unroll
        for (int r = 0; r < kRows; ++r)
          if (row0 + r < N)
            for (int c = lane; c < C; c += kWarp)
              acc[m][r] += load_weight(mats[m], row0 + r, c) * in.value(c);
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

// Blocks of `kernel` that fit the current device at once with `smem` bytes of shared memory
// each (cached per device, kernel and size: the occupancy query costs host time per launch).
int resident_blocks(const void* kernel, size_t smem) {
  static std::mutex mu;
  static std::map<std::tuple<int, const void*, size_t>, int> cache;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 1;
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_tuple(dev, kernel, smem);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  int per_sm = 0, sms = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kWarps * kWarp, smem) !=
          cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
    return 1 << 30;  // unknown: one block per tile
  return cache[key] = std::max(1, per_sm) * std::max(1, sms);
}

template <DType DT, Mode M, int R, int U>
cudaError_t launch_ru(const Params& p, int pairs, cudaStream_t s) {
  const auto kernel = gemv_kernel<DT, M, R, U>;
  const size_t smem = gemv_smem_bytes(DT, p.C);
  const int tiles = (p.N + kWarps * R - 1) / (kWarps * R);
  // Persistent grid: the blocks that fit, shared over the pairs (each block loops over tiles).
  const int fit = resident_blocks(reinterpret_cast<const void*>(kernel), smem);
  const int gx = std::max(1, std::min(tiles, (fit + pairs - 1) / pairs));
  check_launch(launch_kernel(kernel, dim3(gx, pairs), kWarps * kWarp, smem, s, p));
  return cudaSuccess;
}

// Chunks per lane of a row of C values (0 when rows are not read in chunks).
template <DType DT>
int chunks_per_lane(int C) {
  constexpr int WPC = weights_per_chunk<DT>();
  return C % WPC ? 0 : (C / WPC + kWarp - 1) / kWarp;
}

template <DType DT, Mode M>
cudaError_t launch_dt(const Params& p, int pairs, cudaStream_t s) {
  const int cpl = chunks_per_lane<DT>(p.C);
  if constexpr (matrices<M>() == 2) {
    if (cpl >= 3) return launch_ru<DT, M, 2, 4>(p, pairs, s);
    return launch_ru<DT, M, 4, 2>(p, pairs, s);
  } else {
    if (cpl >= 6) return launch_ru<DT, M, 2, 8>(p, pairs, s);
    if (cpl >= 3) return launch_ru<DT, M, 4, 4>(p, pairs, s);
    return launch_ru<DT, M, 8, 2>(p, pairs, s);
  }
}

template <Mode M>
cudaError_t launch(DType dt, const Params& p, int pairs, cudaStream_t s) {
  switch (dt) {
    case DType::kF32:
      return launch_dt<DType::kF32, M>(p, pairs, s);
    case DType::kF16:
      return launch_dt<DType::kF16, M>(p, pairs, s);
    case DType::kBF16:
      return launch_dt<DType::kBF16, M>(p, pairs, s);
    case DType::kQ8:
      return launch_dt<DType::kQ8, M>(p, pairs, s);
    case DType::kQ4:
      return launch_dt<DType::kQ4, M>(p, pairs, s);
  }
  return cudaErrorInvalidValue;
}

template <DType DT, Mode M>
cudaError_t raise_smem_limit_dt() {
  const void* fs[3];
  if constexpr (matrices<M>() == 2) {
    fs[0] = reinterpret_cast<const void*>(gemv_kernel<DT, M, 2, 4>);
    fs[1] = reinterpret_cast<const void*>(gemv_kernel<DT, M, 4, 2>);
    fs[2] = fs[1];
  } else {
    fs[0] = reinterpret_cast<const void*>(gemv_kernel<DT, M, 2, 8>);
    fs[1] = reinterpret_cast<const void*>(gemv_kernel<DT, M, 4, 4>);
    fs[2] = reinterpret_cast<const void*>(gemv_kernel<DT, M, 8, 2>);
  }
  for (const void* f : fs) {
    const cudaError_t e =
        cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSmem);
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

template <Mode M>
cudaError_t raise_smem_limit() {
  for (auto f : {raise_smem_limit_dt<DType::kF32, M>, raise_smem_limit_dt<DType::kF16, M>,
                 raise_smem_limit_dt<DType::kBF16, M>, raise_smem_limit_dt<DType::kQ8, M>,
                 raise_smem_limit_dt<DType::kQ4, M>}) {
    const cudaError_t e = f();
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

}  // namespace

int gemv_max_cols() {
  return int((kMaxSmem - 64) / 4 * 32 / 33 / 32 * 32);
}

bool gemv_fits(const MatView& w) {
  // 32-bit chunk indices (MatRef): under 2^31 chunks of 16 bytes.
  return w.cols <= gemv_max_cols() &&
         dtype_data_bytes(w.dtype, w.rows, w.cols) / 16 < (size_t(1) << 31);
}

cudaError_t gemv_init() {
  cudaError_t e = raise_smem_limit<Mode::kDense>();
  if (e == cudaSuccess) e = raise_smem_limit<Mode::kGateUp>();
  if (e == cudaSuccess) e = raise_smem_limit<Mode::kDown>();
  if (e == cudaSuccess) e = moe_down_init();
  return e;
}

cudaError_t gemv(const MatView& w, const float* x, int T, float* out, cudaStream_t s) {
  if (!gemv_fits(w) || T <= 0 || T > 65535) return cudaErrorInvalidValue;
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
