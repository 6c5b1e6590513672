// GPU micro-benchmarks for `coldstream bench` (declared in kernels/cuda_backend.h): copy rate,
// INT4 MoE decode GEMV, dense decode GEMVs and MoE prefill paths against cuBLAS. CUDA events around
// back-to-back launches, median of `reps` runs after warm-up; weights rotated over more bytes than
// the L2 cache so repeated runs do not read from it; every result checked against the CPU
// reference.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "common/half.h"
#include "kernels/cpu/ref_ops.h"
#include "kernels/cuda/bench_util.h"
#include "kernels/cuda/cuda_util.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda_backend.h"

namespace cs {

using cuda::check;
using cuda::check_blas;
using cuda::DeviceBuffer;
using namespace cuda::bench;

std::vector<KernelTiming> cuda_bench_copy(int device, size_t bytes, int reps) {
  check(cudaSetDevice(device), "cudaSetDevice");
  Stream s;
  DeviceBuffer a(bytes), b(bytes);
  check(cudaMemsetAsync(a.get(), 1, bytes, s), "cudaMemset");
  std::vector<KernelTiming> r(2);
  r[0].name = "copy cudaMemcpy D2D";
  r[0].bytes = 2.0 * double(bytes);
  r[0].ms = median_ms(s, reps, 1, [&](int) {
    check(cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice, s), "cudaMemcpy");
  });
  r[1].name = "copy kernel (16-byte loads)";
  r[1].bytes = r[0].bytes;
  r[1].ms = median_ms(s, reps, 1,
                      [&](int) { check(cuda::copy_kernel(a.get(), b.get(), bytes, s), "copy"); });
  return r;
}

std::vector<KernelTiming> cuda_bench_moe_decode(int device, int H, int I, int K, int group,
                                                int reps) {
  check(cudaSetDevice(device), "cudaSetDevice");
  const CudaDeviceInfo info = cuda_device_info(device);
  check(cuda::gemv_init(), "gemv_init");
  Stream s;
  const ExpertLayout lay = make_expert_layout(DType::kQ4, H, I, group, false);
  // Enough layers that one pass over them is at least 4x the L2 cache.
  const int L = int(std::clamp<size_t>(4 * info.l2_bytes / (size_t(K) * lay.bytes) + 1, 4, 64));
  DeviceExperts ex(L * K, H, I, group, s, 1234);
  DeviceBuffer x(size_t(H) * 4), out(size_t(H) * 4), ids(size_t(L) * K * 4), wts(size_t(K) * 4),
      table(size_t(L) * K * sizeof(ExpertWeights)),
      ws(cuda::moe_gemv_workspace_floats(1, K, I, H) * 4);
  check(cuda::fill_uniform(x.get(), DType::kF32, size_t(H), -1.0f, 1.0f, 99, s), "fill");
  std::vector<int32_t> hid(size_t(L) * K);
  std::vector<ExpertWeights> htab(size_t(L) * K);
  for (int i = 0; i < L * K; ++i) hid[i] = i % K, htab[i] = ex.view(i);
  std::vector<float> hw(size_t(K), 1.0f / float(K));
  check(cudaMemcpy(ids.get(), hid.data(), hid.size() * 4, cudaMemcpyHostToDevice), "upload");
  check(cudaMemcpy(wts.get(), hw.data(), hw.size() * 4, cudaMemcpyHostToDevice), "upload");
  check(cudaMemcpy(table.get(), htab.data(), htab.size() * sizeof(ExpertWeights),
                   cudaMemcpyHostToDevice),
        "upload");
  auto args = [&](int layer) {
    MoeArgs a;
    a.x = x.get<float>();
    a.T = 1;
    a.hidden = H;
    a.ids = ids.get<int32_t>();
    a.weights = wts.get<float>();
    a.k = K;
    a.table = table.get<ExpertWeights>() + size_t(layer % L) * K;
    a.n_experts = K;
    a.dtype = DType::kQ4;
    a.inter = I;
    a.out = out.get<float>();
    return a;
  };
  const double bytes = double(K) * double(ex.weight_bytes()) + 4.0 * H * 2;
  std::vector<KernelTiming> r(2);
  r[0].name = "moe decode Q4, stream";
  r[0].bytes = bytes;
  r[0].ms = median_ms(
      s, reps, L, [&](int i) { check(cuda::moe_gemv(args(i), ws.get<float>(), s), "moe_gemv"); });
  // Correctness: layer 0 against the CPU reference.
  check(cuda::moe_gemv(args(0), ws.get<float>(), s), "moe_gemv");
  check(cudaStreamSynchronize(s), "sync");
  const std::vector<float> got = download_floats(out.get<float>(), size_t(H));
  const std::vector<float> hx = download_floats(x.get<float>(), size_t(H));
  const std::vector<int32_t> ids0(hid.begin(), hid.begin() + K);
  r[0].max_rel_err = rel_err(got, reference_moe(ex, hx, 1, H, ids0, hw, K));
  // The same L layers captured in one CUDA graph: launch gaps shrink.
  cudaGraph_t g = nullptr;
  cudaGraphExec_t ge = nullptr;
  check(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "capture");
  for (int i = 0; i < L; ++i) check(cuda::moe_gemv(args(i), ws.get<float>(), s), "moe_gemv");
  check(cudaStreamEndCapture(s, &g), "capture");
  check(cudaGraphInstantiate(&ge, g, 0), "instantiate");
  r[1].name = "moe decode Q4, CUDA graph";
  r[1].bytes = bytes;
  r[1].max_rel_err = r[0].max_rel_err;
  r[1].ms = median_ms(s, reps, 1, [&](int) { check(cudaGraphLaunch(ge, s), "graph"); }) / L;
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  return r;
}

std::vector<KernelTiming> cuda_bench_gemv(int device, DType dt, int N, int C, int reps) {
  check(cudaSetDevice(device), "cudaSetDevice");
  if (dt != DType::kBF16 && dt != DType::kQ4 && dt != DType::kQ8)
    fail(ErrorKind::kInvalidArgument, "bench gemv: dtype {} not measured", dtype_name(dt));
  const bool quant = dt == DType::kQ4 || dt == DType::kQ8;
  const CudaDeviceInfo info = cuda_device_info(device);
  check(cuda::gemv_init(), "gemv_init");
  Stream s;
  const int group = 32;
  const size_t data = dtype_data_bytes(dt, N, C);
  const size_t scales = quant ? size_t(N) * (C / group) * 2 : 0;
  const size_t mat = (data + scales + 255) / 256 * 256;
  // Enough copies that one pass over them is at least 4x the L2 cache (at least 2).
  const int L = int(std::clamp<size_t>(4 * info.l2_bytes / mat + 1, 2, 64));
  DeviceBuffer w(size_t(L) * mat), x(size_t(C) * 4), out(size_t(N) * 4);
  std::vector<MatView> views(static_cast<size_t>(L));
  for (int i = 0; i < L; ++i) {
    MatView& v = views[size_t(i)];
    uint8_t* base = w.get<uint8_t>() + size_t(i) * mat;
    v.dtype = dt;
    v.data = base;
    v.rows = N;
    v.cols = C;
    if (quant) {  // Q8: the same random bytes read as int8 codes
      v.group = group;
      v.scales = reinterpret_cast<const uint16_t*>(base + data);
      check(cuda::fill_q4_codes(base, data, 77 + i, s), "fill");
      const float d = 1.0f / ((dt == DType::kQ4 ? 4.3f : 73.0f) * std::sqrt(float(C)));
      check(cuda::fill_uniform(base + data, DType::kF16, scales / 2, 0.5f * d, 1.5f * d, 78 + i, s),
            "fill");
    } else {
      const float a = 1.0f / std::sqrt(float(C));
      check(cuda::fill_uniform(base, dt, size_t(N) * C, -a, a, 77 + i, s), "fill");
    }
  }
  check(cuda::fill_uniform(x.get(), DType::kF32, size_t(C), -1.0f, 1.0f, 98, s), "fill");
  const double bytes = double(data + scales) + 4.0 * (C + N);
  const std::string shape = fmt::format("{} gemv {} x {}", dtype_name(dt), N, C);
  std::vector<KernelTiming> r(2);
  r[0].name = shape + ", stream";
  r[0].bytes = bytes;
  r[0].ms = median_ms(s, reps, L, [&](int i) {
    check(cuda::gemv(views[size_t(i % L)], x.get<float>(), 1, out.get<float>(), s), "gemv");
  });
  // Correctness: copy 0 against the CPU reference.
  check(cuda::gemv(views[0], x.get<float>(), 1, out.get<float>(), s), "gemv");
  check(cudaStreamSynchronize(s), "sync");
  std::vector<uint8_t> hw(data + scales);
  check(cudaMemcpy(hw.data(), views[0].data, hw.size(), cudaMemcpyDeviceToHost), "download");
  MatView hv = views[0];
  hv.data = hw.data();
  if (quant) hv.scales = reinterpret_cast<const uint16_t*>(hw.data() + data);
  const std::vector<float> hx = download_floats(x.get<float>(), size_t(C));
  std::vector<float> want(static_cast<size_t>(N));
  ref::matmul(hx.data(), 1, hv, want.data());
  r[0].max_rel_err = rel_err(download_floats(out.get<float>(), size_t(N)), want);
  cudaGraph_t g = nullptr;
  cudaGraphExec_t ge = nullptr;
  check(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "capture");
  for (int i = 0; i < L; ++i)
    check(cuda::gemv(views[size_t(i)], x.get<float>(), 1, out.get<float>(), s), "gemv");
  check(cudaStreamEndCapture(s, &g), "capture");
  check(cudaGraphInstantiate(&ge, g, 0), "instantiate");
  r[1].name = shape + ", CUDA graph";
  r[1].bytes = bytes;
  r[1].max_rel_err = r[0].max_rel_err;
  r[1].ms = median_ms(s, reps, 1, [&](int) { check(cudaGraphLaunch(ge, s), "graph"); }) / L;
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  return r;
}

std::vector<KernelTiming> cuda_bench_read(int device, size_t bytes, int reps) {
  check(cudaSetDevice(device), "cudaSetDevice");
  const CudaDeviceInfo info = cuda_device_info(device);
  Stream s;
  bytes = (bytes + 255) / 256 * 256;
  // Windows of `bytes`, enough that one pass over them is at least 4x the L2 cache.
  const int W = int(std::max<size_t>(2, (4 * info.l2_bytes + bytes - 1) / bytes));
  DeviceBuffer buf(size_t(W) * bytes), sink(4);
  check(cuda::fill_q4_codes(buf.get(), size_t(W) * bytes, 7, s), "fill");
  auto window = [&](int i) { return buf.get<uint8_t>() + size_t(i % W) * bytes; };
  const int sms = info.sm_count;
  std::vector<KernelTiming> r;
  auto add = [&](std::string name, auto&& launch) {
    KernelTiming t;
    t.name = std::move(name);
    t.bytes = double(bytes);
    t.ms = median_ms(s, reps, W, [&](int i) { check(launch(window(i)), "read probe"); });
    r.push_back(t);
  };
  struct Ldg {
    int blocks_per_sm, warps, loads;
  };
  // 3 x 4 x 16: the decode GEMVs' grid; 16 x 4 x 1: the copy kernel's.
  for (const Ldg c : {Ldg{3, 4, 16}, Ldg{1, 4, 16}, Ldg{3, 4, 4}, Ldg{8, 8, 4}, Ldg{16, 4, 1},
                      Ldg{16, 4, 4}, Ldg{4, 16, 16}}) {
    add(fmt::format("read LDG, {} x {} warps per SM, {} loads per thread", c.blocks_per_sm, c.warps,
                    c.loads),
        [&](const void* p) {
          return cuda::read_probe_ldg(p, bytes, c.blocks_per_sm * sms, c.warps, c.loads,
                                      sink.get<unsigned>(), s);
        });
  }
  if (info.cc_major >= 9) {
    check(cuda::read_probe_tma_init(), "read probe (bulk copies)");
    struct Tma {
      int blocks_per_sm, stages, chunk_kib;
    };
    for (const Tma c :
         {Tma{1, 4, 16}, Tma{1, 8, 16}, Tma{1, 4, 32}, Tma{2, 4, 16}, Tma{1, 12, 16}}) {
      add(fmt::format("read bulk copy, {} block(s) per SM, {} x {} KiB in flight", c.blocks_per_sm,
                      c.stages, c.chunk_kib),
          [&](const void* p) {
            return cuda::read_probe_tma(p, bytes, c.blocks_per_sm * sms, c.stages,
                                        c.chunk_kib * 1024, sink.get<unsigned>(), s);
          });
    }
  }
  return r;
}

KernelTiming cuda_bench_gemm_bf16(int device, int T, int N, int C, int reps) {
  check(cudaSetDevice(device), "cudaSetDevice");
  Stream s;
  cublasHandle_t h;
  check_blas(cublasCreate(&h), "cublasCreate");
  check_blas(cublasSetStream(h, s), "cublasSetStream");
  DeviceBuffer x(size_t(T) * C * 2), w(size_t(N) * C * 2), o(size_t(T) * N * 4);
  check(cuda::fill_uniform(x.get(), DType::kBF16, size_t(T) * C, -1, 1, 5, s), "fill");
  check(cuda::fill_uniform(w.get(), DType::kBF16, size_t(N) * C, -0.05f, 0.05f, 6, s), "fill");
  const float one = 1, zero = 0;
  KernelTiming r;
  r.name = "cuBLAS BF16 GEMM";
  r.flops = 2.0 * T * N * C;
  r.bytes = 2.0 * (double(T) * C + double(N) * C) + 4.0 * T * N;
  r.ms = median_ms(s, reps, 1, [&](int) {
    check_blas(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, T, C, &one, w.get(), CUDA_R_16BF, C,
                            x.get(), CUDA_R_16BF, C, &zero, o.get(), CUDA_R_32F, N,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
  });
  cublasDestroy(h);
  return r;
}

}  // namespace cs
