// The MoE prefill micro-benchmark: one layer of E Q4 experts, T tokens routed uniformly to K
// distinct experts each. Compares the grouped INT4 GEMM, the GEMV path, dequantize + cuBLAS BF16
// per expert, cuBLAS BF16 alone per expert on weights already in BF16, and one cuBLAS GEMM of
// the same total size (the ideal dense time).
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <numeric>
#include <random>

#include "kernels/cuda/bench_util.h"

namespace cs {

using cuda::check;
using cuda::check_blas;
using cuda::DeviceBuffer;
using namespace cuda::bench;

std::vector<KernelTiming> cuda_bench_moe_prefill(int device, int T, int H, int I, int E, int K,
                                                 int group, int reps) {
  check(cudaSetDevice(device), "cudaSetDevice");
  check(cuda::gemv_init(), "gemv_init");
  Stream s;
  cublasHandle_t blas;
  check_blas(cublasCreate(&blas), "cublasCreate");
  check_blas(cublasSetStream(blas, s), "cublasSetStream");
  DeviceExperts ex(E, H, I, group, s, 777);
  const int P = T * K;
  // Routing: K distinct experts per token, uniform.
  std::mt19937 rng(42);
  std::vector<int32_t> hid(static_cast<size_t>(P));
  std::vector<int> order(static_cast<size_t>(E));
  std::iota(order.begin(), order.end(), 0);
  for (int t = 0; t < T; ++t) {
    std::shuffle(order.begin(), order.end(), rng);
    for (int j = 0; j < K; ++j) hid[size_t(t) * K + j] = order[j];
  }
  std::vector<float> hw(size_t(P), 1.0f / float(K));
  std::vector<ExpertWeights> htab(static_cast<size_t>(E));
  for (int e = 0; e < E; ++e) htab[e] = ex.view(e);
  DeviceBuffer x(size_t(T) * H * 4), out(size_t(T) * H * 4), ids(size_t(P) * 4), wts(size_t(P) * 4),
      table(size_t(E) * sizeof(ExpertWeights)),
      ws(cuda::moe_grouped_workspace_bytes(T, K, E, I, H));
  check(cuda::fill_uniform(x.get(), DType::kF32, size_t(T) * H, -1.0f, 1.0f, 3, s), "fill");
  check(cudaMemcpy(ids.get(), hid.data(), hid.size() * 4, cudaMemcpyHostToDevice), "upload");
  check(cudaMemcpy(wts.get(), hw.data(), hw.size() * 4, cudaMemcpyHostToDevice), "upload");
  check(cudaMemcpy(table.get(), htab.data(), htab.size() * sizeof(ExpertWeights),
                   cudaMemcpyHostToDevice),
        "upload");
  MoeArgs a;
  a.x = x.get<float>();
  a.T = T;
  a.hidden = H;
  a.ids = ids.get<int32_t>();
  a.weights = wts.get<float>();
  a.k = K;
  a.table = table.get<ExpertWeights>();
  a.n_experts = E;
  a.dtype = DType::kQ4;
  a.inter = I;
  a.out = out.get<float>();
  const double flops = 2.0 * P * 3.0 * H * I;
  const double wbytes = double(E) * double(ex.weight_bytes());
  std::vector<KernelTiming> r;
  auto add = [&](const char* name, double ms, double bytes) {
    KernelTiming k;
    k.name = name;
    k.ms = ms;
    k.flops = flops;
    k.bytes = bytes;
    r.push_back(k);
  };
  // Grouped INT4 GEMM, checked on the first tokens against the CPU reference.
  add("moe prefill grouped INT4 GEMM",
      median_ms(s, reps, 1, [&](int) { check(cuda::moe_grouped(a, ws.get(), s), "grouped"); }),
      wbytes);
  {
    check(cudaStreamSynchronize(s), "sync");
    const int Tc = std::min(T, 4);
    const std::vector<float> got = download_floats(out.get<float>(), size_t(Tc) * H);
    const std::vector<float> hx = download_floats(x.get<float>(), size_t(Tc) * H);
    const std::vector<int32_t> idc(hid.begin(), hid.begin() + Tc * K);
    const std::vector<float> wc(hw.begin(), hw.begin() + Tc * K);
    r.back().max_rel_err = rel_err(got, reference_moe(ex, hx, Tc, H, idc, wc, K));
  }
  // The GEMV path reads each expert once per routed token.
  if (P <= 4096) {
    DeviceBuffer gws(cuda::moe_gemv_workspace_floats(T, K, I, H) * 4);
    add("moe prefill GEMV per pair",
        median_ms(s, std::max(1, reps / 4), 1,
                  [&](int) { check(cuda::moe_gemv(a, gws.get<float>(), s), "gemv"); }),
        double(P) * ex.weight_bytes());
  }
  // Per-expert cuBLAS BF16: with dequantization, and alone on pre-dequantized weights.
  std::vector<int> cnt(size_t(E), 0);
  for (int32_t e : hid) ++cnt[e];
  DeviceBuffer xs(size_t(P) * H * 2), act(size_t(P) * 2 * I * 2), ys(size_t(P) * H * 4);
  check(cuda::fill_uniform(xs.get(), DType::kBF16, size_t(P) * H, -1, 1, 8, s), "fill");
  const size_t ebf = size_t(3) * H * I;  // BF16 weights of one expert: gate|up [2I][H], down [H][I]
  DeviceBuffer wall(size_t(E) * ebf * 2);
  auto dequant_expert = [&](int e, __nv_bfloat16_raw* dst) {
    const ExpertWeights w = ex.view(e);
    check(cuda::dequantize(w.gate, DType::kBF16, dst, s), "dequantize");
    check(cuda::dequantize(w.up, DType::kBF16, dst + size_t(I) * H, s), "dequantize");
    check(cuda::dequantize(w.down, DType::kBF16, dst + size_t(2) * I * H, s), "dequantize");
  };
  auto expert_gemms = [&](const __nv_bfloat16_raw* w, int row0, int n) {
    const float one = 1, zero = 0;
    const void* xin = xs.get<uint8_t>() + size_t(row0) * H * 2;
    void* a1 = act.get<uint8_t>() + size_t(row0) * 2 * I * 2;
    check_blas(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, 2 * I, n, H, &one, w, CUDA_R_16BF, H,
                            xin, CUDA_R_16BF, H, &zero, a1, CUDA_R_16BF, 2 * I, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT),
               "gemm");
    check_blas(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, H, n, I, &one, w + size_t(2) * I * H,
                            CUDA_R_16BF, I, a1, CUDA_R_16BF, 2 * I, &zero,
                            ys.get<float>() + size_t(row0) * H, CUDA_R_32F, H, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT),
               "gemm");
  };
  DeviceBuffer one_expert(ebf * 2);
  add("moe prefill dequantize + cuBLAS BF16",
      median_ms(s, reps, 1,
                [&](int) {
                  int row = 0;
                  for (int e = 0; e < E; ++e) {
                    if (!cnt[e]) continue;
                    dequant_expert(e, one_expert.get<__nv_bfloat16_raw>());
                    expert_gemms(one_expert.get<__nv_bfloat16_raw>(), row, cnt[e]);
                    row += cnt[e];
                  }
                }),
      wbytes + double(E) * ebf * 4);
  for (int e = 0; e < E; ++e) dequant_expert(e, wall.get<__nv_bfloat16_raw>() + size_t(e) * ebf);
  add("moe prefill cuBLAS BF16 per expert (weights already BF16)",
      median_ms(s, reps, 1,
                [&](int) {
                  int row = 0;
                  for (int e = 0; e < E; ++e) {
                    if (!cnt[e]) continue;
                    expert_gemms(wall.get<__nv_bfloat16_raw>() + size_t(e) * ebf, row, cnt[e]);
                    row += cnt[e];
                  }
                }),
      double(E) * ebf * 2);
  add("moe prefill cuBLAS BF16 as one GEMM of the same size",
      median_ms(s, reps, 1, [&](int) { expert_gemms(wall.get<__nv_bfloat16_raw>(), 0, P); }),
      double(ebf) * 2);
  cublasDestroy(blas);
  return r;
}

}  // namespace cs
