// Matmul over every weight dtype (GEMV and cuBLAS paths) and MoE (GEMV path for every dtype, the
// grouped INT4 GEMM for Q4) against the CPU reference.
#include "kernels/quant.h"
#include "tests/common/int8_reference.h"
#include "tests/gpu/gpu_util.h"

using namespace cs;
using namespace cs::gputest;

namespace {

const DType kAll[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8, DType::kQ4};

// A backend with the given thresholds (to force one path), checking every op.
std::unique_ptr<Backend> backend_with(int gemm_min, int grouped_min) {
  CudaBackendOptions o;
  o.check_each_op = true;
  o.gemm_min_tokens = gemm_min;
  o.moe_grouped_min_tokens = grouped_min;
  return make_cuda_backend(o);
}

// Tolerance for a path: fp32 math (GEMV, SGEMM) or 16-bit operands (cuBLAS on F16/BF16, or on
// weights dequantized to BF16, where the reference takes the same rounded input and weights).
double tolerance(DType dt, bool gemm) {
  if (!gemm || dt == DType::kF32) return 5e-5;
  return dt == DType::kF16 ? 4e-3 : dt == DType::kBF16 ? 2e-2 : 5e-3;
}

// A quantized matrix dequantized and rounded to BF16 (host copy), as the cuBLAS path multiplies it.
Mat bf16_rounded(const MatView& w) {
  Mat m;
  m.host = MatView{};
  m.host.dtype = DType::kBF16;
  m.host.rows = w.rows;
  m.host.cols = w.cols;
  m.mem.emplace_back(size_t(w.rows) * size_t(w.cols) * 2);
  uint16_t* dst = reinterpret_cast<uint16_t*>(m.mem[0].data());
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    dequantize_row(w, r, row.data());
    for (int64_t c = 0; c < w.cols; ++c) dst[r * w.cols + c] = f32_to_bf16(row[size_t(c)]);
  }
  m.host.data = dst;
  return m;
}

// x rounded as the cuBLAS path converts it for weights of dtype `dt`.
std::vector<float> rounded_input(std::vector<float> x, DType dt) {
  for (float& v : x)
    v = dt == DType::kF16 ? f16_to_f32(f32_to_f16(v)) : bf16_to_f32(f32_to_bf16(v));
  return x;
}

}  // namespace

TEST_SUITE("ops") {
  TEST_CASE("matmul: every dtype, GEMV and GEMM paths, odd sizes") {
    for (bool gemm_pass : {false, true}) {
      auto b = backend_with(gemm_pass ? 1 : 1 << 30, 1 << 30);
      for (DType dt : kAll)
        for (int T : {1, 3, 7, 37, 129})
          for (int N : {1, 7, 37, 129, 300}) {
            const bool quant = dt == DType::kQ4 || dt == DType::kQ8;
            // The backend keeps quantized weights on the GEMV below 16 rows whatever its
            // threshold (CudaBackend::use_gemv).
            const bool gemm = gemm_pass && (!quant || T >= 16);
            const int group = quant && randint(0, 1) ? 128 : 32;
            const int C =
                quant ? group * randint(1, 5) : std::vector<int>{1, 3, 37, 129, 520}[randint(0, 4)];
            CAPTURE(gemm);
            const std::string dtype = dtype_name(dt);
            CAPTURE(dtype);
            CAPTURE(T);
            CAPTURE(N);
            CAPTURE(C);
            Mat w =
                make_mat(dt, N, C, 1.0f / std::sqrt(float(C)), group, dt == DType::kQ4 && N % 2);
            std::vector<float> x = randvec(size_t(T) * C), want(size_t(T) * N);
            // The cuBLAS path rounds the input to the 16-bit type it multiplies in (F16 for F16
            // weights, else BF16): the reference takes the same rounded input, so the check
            // measures the GEMM and not the rounding (with N = 1 a single output near zero made
            // the relative error of the rounding exceed the tolerance).
            // The GEMV path quantizes the input of Q4/Q8 weights to int8 (int8_rounded): the
            // reference takes that input, and the raw one within the quantization's error.
            const std::vector<float> xin = gemm && dt != DType::kF32 ? rounded_input(x, dt)
                                           : !gemm && quant ? test::int8_rounded(x, size_t(C))
                                                            : x;
            // Quantized weights on the cuBLAS path are dequantized to BF16 first: the reference
            // takes the same rounded weights (with N = 1, Q4, C = 384 the weights' rounding alone
            // gave 3.5e-2 against the exact ones).
            const Mat wb = gemm && quant ? bf16_rounded(w.host) : Mat{};
            ref::matmul(xin.data(), T, gemm && quant ? wb.host : w.host, want.data());
            Buffer dx = to_gpu(x);
            Buffer out = poisoned(want.size() * 4);
            b->matmul(dx.as<float>(), T, w.dev, out.as<float>());
            std::vector<float> got(want.size());
            b->download(got.data(), out.get(), got.size() * 4);
            CHECK(rel_err(got, want) < tolerance(dt, gemm));
            if (!gemm && quant) {
              // Against the raw input: within half an input step per weight, sum_j |w_j| x
              // amax(block of j) / 254 (the CPU kernels' bound, docs/TESTING.md), plus fp32.
              std::vector<float> exact(want.size());
              ref::matmul(x.data(), T, w.host, exact.data());
              std::vector<float> row(static_cast<size_t>(C));
              int over = 0;
              for (int n = 0; n < N; ++n) {
                dequantize_row(w.host, n, row.data());
                for (int t = 0; t < T; ++t) {
                  const float* xt = x.data() + size_t(t) * C;
                  double bound = 0, mag = 0;
                  for (int b = 0; b < C; b += 32) {
                    float amax = 0;
                    for (int j = b; j < b + 32; ++j) amax = std::max(amax, std::fabs(xt[j]));
                    for (int j = b; j < b + 32; ++j) {
                      bound += std::fabs(row[j]) * amax / 254;
                      mag += std::fabs(row[j] * xt[j]);
                    }
                  }
                  const size_t i = size_t(t) * N + n;
                  over += std::fabs(got[i] - exact[i]) > bound * 1.001 + 2e-5 * mag;
                }
              }
              CHECK(over == 0);
            }
          }
    }
  }

  TEST_CASE("matmul: decode-sized rows of large matrices") {
    for (DType dt : kAll) {
      const std::string dtype = dtype_name(dt);
      CAPTURE(dtype);
      Mat w = make_mat(dt, 4099, 4096, 1.0f / 64);
      std::vector<float> x = randvec(4096), want(4099);
      const bool quant = dt == DType::kQ4 || dt == DType::kQ8;
      ref::matmul(quant ? test::int8_rounded(x).data() : x.data(), 1, w.host, want.data());
      Buffer dx = to_gpu(x), out = poisoned(want.size() * 4);
      gpu().matmul(dx.as<float>(), 1, w.dev, out.as<float>());
      CHECK(rel_err(from_gpu<float>(out.get(), want.size()), want) < 5e-5);
    }
  }

  // Backend::route: one launch for few tokens and F32/F16/BF16 routers (the last block selects),
  // the matmul + router pair otherwise (Q8 here, T = 7, 12 columns of BF16/F16, T x E over 4096).
  // The logits are checked against the reference product and the selection exactly against the
  // reference router run on the GPU's own logits. Every call reuses the backend's block counter, so
  // a counter left non-zero would leave the next call's ids poisoned.
  TEST_CASE("route: router product and top-k, fused for decode") {
    int fused_shapes = 0;
    for (DType dt : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8})
      for (int E : {1, 8, 37, 128, 257, 1500})
        for (int C : {12, 96, 4096})
          for (int T : {1, 3, 7}) {
            const bool quant = dt == DType::kQ8;
            if (quant && C % 32) continue;
            const int k = std::min(E, randint(0, 1) ? 8 : 1);
            const bool renorm = randint(0, 1);
            const std::string dtype = dtype_name(dt);
            CAPTURE(dtype);
            CAPTURE(E);
            CAPTURE(C);
            CAPTURE(T);
            CAPTURE(k);
            fused_shapes +=
                !quant && T <= 4 && T * E <= 4096 && C % (dt == DType::kF32 ? 4 : 8) == 0;
            Mat w = make_mat(dt, E, C, 1.0f / std::sqrt(float(C)));
            std::vector<float> x = randvec(size_t(T) * C, -3, 3), want(size_t(T) * E);
            ref::matmul(quant ? test::int8_rounded(x).data() : x.data(), T, w.host, want.data());
            Buffer dx = to_gpu(x), dl = poisoned(want.size() * 4);
            Buffer dids = poisoned(size_t(T) * k * 4), dw = poisoned(size_t(T) * k * 4);
            gpu().route(dx.as<float>(), T, w.dev, k, renorm, dl.as<float>(), dids.as<int32_t>(),
                        dw.as<float>());
            const std::vector<float> logits = from_gpu<float>(dl.get(), want.size());
            // Logits are O(1) (|x| <= 3, rows scaled by 1/sqrt(C)); with few of them all may be
            // near zero (E = 1: one sum of 4096 terms that cancels), so the error is taken
            // against at least 1 (seen: 1.2e-4 relative at BF16, E = 1, C = 4096, T = 1).
            CHECK(rel_err(logits, want, 1.0) < 5e-5);
            std::vector<int32_t> ids(size_t(T) * k);
            std::vector<float> weights(ids.size());
            ref::router(logits.data(), T, E, k, renorm, ids.data(), weights.data());
            CHECK(from_gpu<int32_t>(dids.get(), ids.size()) == ids);
            CHECK(rel_err(from_gpu<float>(dw.get(), weights.size()), weights) < 1e-5);
          }
    CHECK(fused_shapes > 20);  // the fused kernel was exercised, not only the fallback
  }

  // NaN logits (a NaN in the hidden state) leave no expert to select by value: the ids must still
  // index the table (the MoE kernels read table[id]) and the weights show the NaN, as on the CPU.
  TEST_CASE("route: NaN logits give valid ids and NaN weights") {
    for (int T : {1, 3, 7})  // fused (T <= 4) and matmul + router
      for (int E : {8, 128}) {
        CAPTURE(T);
        CAPTURE(E);
        const int C = 96, k = 8;
        Mat w = make_mat(DType::kBF16, E, C, 1.0f / std::sqrt(float(C)));
        std::vector<float> x = randvec(size_t(T) * C, -3, 3);
        for (int t = 0; t < T; ++t) x[size_t(t) * C + 5] = NAN;
        Buffer dx = to_gpu(x), dl = poisoned(size_t(T) * E * 4);
        Buffer dids = poisoned(size_t(T) * k * 4), dw = poisoned(size_t(T) * k * 4);
        gpu().route(dx.as<float>(), T, w.dev, k, true, dl.as<float>(), dids.as<int32_t>(),
                    dw.as<float>());
        for (int32_t id : from_gpu<int32_t>(dids.get(), size_t(T) * k)) {
          CHECK(id >= 0);
          CHECK(id < E);
        }
        for (float v : from_gpu<float>(dw.get(), size_t(T) * k)) CHECK(std::isnan(v));
      }
  }

  TEST_CASE("moe: every dtype, absent experts, accumulate; GEMV and grouped INT4 paths") {
    for (bool grouped : {false, true}) {
      auto b = backend_with(8, grouped ? 1 : 1 << 30);
      for (DType dt : kAll)
        for (int T : {1, 3, 7, 37, 129}) {
          if (grouped && dt != DType::kQ4) continue;
          const bool quant = dt == DType::kQ4 || dt == DType::kQ8;
          const int H = quant ? 32 * randint(1, 6) : randint(1, 200);
          const int I = quant ? 32 * randint(1, 4) : randint(1, 100);
          const int E = randint(1, 12), K = randint(1, std::min(E, 8));
          const bool asym = dt == DType::kQ4 && randint(0, 1);
          CAPTURE(grouped);
          const std::string dtype = dtype_name(dt);
          CAPTURE(dtype);
          CAPTURE(T);
          CAPTURE(H);
          CAPTURE(I);
          CAPTURE(E);
          CAPTURE(K);
          CAPTURE(asym);
          std::vector<Mat> mats;
          std::vector<ExpertWeights> host_table(static_cast<size_t>(E)),
              dev_table(static_cast<size_t>(E));
          for (int e = 0; e < E; ++e) {
            if (E > 1 && randint(0, 5) == 0) continue;  // absent: the offload engine's share
            mats.push_back(make_mat(dt, I, H, 1.0f / std::sqrt(float(H)), 32, asym));
            mats.push_back(make_mat(dt, I, H, 1.0f / std::sqrt(float(H)), 32, asym));
            mats.push_back(make_mat(dt, H, I, 1.0f / std::sqrt(float(I)), 32, asym));
            const size_t n = mats.size();
            host_table[e] = {mats[n - 3].host, mats[n - 2].host, mats[n - 1].host};
            dev_table[e] = {mats[n - 3].dev, mats[n - 2].dev, mats[n - 1].dev};
          }
          std::vector<int32_t> ids(size_t(T) * K);
          std::vector<float> wts(ids.size());
          for (int t = 0; t < T; ++t) {
            std::vector<int> order(static_cast<size_t>(E));
            std::iota(order.begin(), order.end(), 0);
            std::shuffle(order.begin(), order.end(), rng());
            for (int j = 0; j < K; ++j)
              ids[size_t(t) * K + j] = order[j], wts[size_t(t) * K + j] = uniform(0, 1);
          }
          const bool acc = randint(0, 1);
          std::vector<float> x = randvec(size_t(T) * H), out0 = randvec(size_t(T) * H);
          std::vector<float> want = out0;
          MoeArgs a;
          a.x = x.data();
          a.T = T;
          a.hidden = H;
          a.ids = ids.data();
          a.weights = wts.data();
          a.k = K;
          a.table = host_table.data();
          a.n_experts = E;
          a.dtype = dt;
          a.inter = I;
          a.out = want.data();
          a.accumulate = acc;
          if (quant && !grouped) {  // the GEMV path rounds x and the intermediate to int8
            if (!acc) std::fill(want.begin(), want.end(), 0.0f);
            test::int8_rounded_moe([&](int32_t e) { return host_table[size_t(e)]; }, x.data(), T, H,
                                   K, ids.data(), wts.data(), want.data());
          } else {
            ref::moe(a);
          }
          Buffer dx = to_gpu(x), dids = to_gpu(ids), dw = to_gpu(wts), dt_ = to_gpu(dev_table);
          Buffer dout = acc ? to_gpu(out0) : poisoned(out0.size() * 4);
          a.x = dx.as<float>();
          a.ids = dids.as<int32_t>();
          a.weights = dw.as<float>();
          a.table = dt_.as<ExpertWeights>();
          a.out = dout.as<float>();
          b->moe(a);
          std::vector<float> got(want.size());
          b->download(got.data(), dout.get(), got.size() * 4);
          // int8 path: an intermediate value computed in another order may round to the next
          // code (one step of its block, 1/127 of the block's largest value).
          CHECK(rel_err(got, want) < (grouped ? 2e-2 : quant ? 1e-3 : 5e-5));
          if (quant && !grouped) {
            std::vector<float> exact = out0;
            a.out = exact.data();
            a.x = x.data();
            a.ids = ids.data();
            a.weights = wts.data();
            a.table = host_table.data();
            ref::moe(a);
            CHECK(rel_err(got, exact) < 3e-2);  // the CPU's MoE: measured up to 1.3e-2 at H = 32
          }
        }
    }
  }
}
