// The SIMD kernel tables (kernels/cpu/simd.h) of every instruction-set level this machine runs,
// against the reference ops, over odd shapes: rows not a multiple of the tile, an odd number of
// 32-blocks, more columns than one K-segment, 1..9 tokens.
//
// Tolerances (docs/TESTING.md):
// - the int8 arithmetic is checked exactly: against the dequantized weights times the dequantized
//   int8 activations (in double), to 1e-5 of sum |w * x^|, i.e. fp32 rounding only;
// - against the reference (fp32 activations): the error of each dot is at most
//   sum_j |w_j| * amax(block of j) / 254 (half an activation step), plus fp32 rounding;
// - F32/F16/BF16 weights: 1e-5 of sum |w * x|.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/ref_ops.h"
#include "kernels/cpu/simd.h"
#include "tests/unit/cpu_test_util.h"

using namespace cs;

namespace {

// The activation of column c, undoing the chunk order of `isa` (pairs interleaved on AVX-512).
float act_value(const cpu::QActRow& a, int64_t C, CpuIsa isa, int64_t c) {
  const int64_t b = c / 32, j = c % 32, nb = C / 32;
  const bool pairs = isa == CpuIsa::kAvx512 || isa == CpuIsa::kAvx512Vnni;
  int64_t pos = c;
  if (pairs && (b | 1) < nb) pos = (b & ~int64_t(1)) * 32 + (j / 16) * 32 + (b & 1) * 16 + j % 16;
  return a.s[b] * float(a.q[pos]);
}

struct QuantizedActs {
  std::vector<uint8_t> mem;
  std::vector<cpu::QActRow> rows;
};

QuantizedActs quantize(const cpu::CpuKernels& K, const std::vector<float>& x, int T, int64_t C) {
  QuantizedActs q;
  const int64_t bytes = cpu::qact_bytes(C);
  q.mem.resize(size_t(bytes * T + 64));
  uint8_t* base = q.mem.data() + (64 - reinterpret_cast<uintptr_t>(q.mem.data()) % 64) % 64;
  for (int t = 0; t < T; ++t) {
    q.rows.push_back(cpu::qact_view(base + t * bytes, C));
    K.quantize(x.data() + t * C, C, q.rows.back());
  }
  return q;
}

// Activations with a zero row, a tiny-scale block and an outlier, besides the normal ones.
std::vector<float> make_x(int T, int64_t C, std::mt19937& rng) {
  std::vector<float> x = test::randn(size_t(T * C), rng);
  if (T > 1) std::fill(x.begin() + C, x.begin() + 2 * C, 0.0f);
  for (int j = 0; j < 32; ++j) x[size_t(j)] *= 1e-6f;
  x[size_t(C / 2)] = 40.0f;
  return x;
}

// Runs qdot/fdot as the drivers do: tiles of up to 4 rows, all tokens at once.
std::vector<float> run_dot(const cpu::CpuKernels& K, const MatView& w, const QuantizedActs* qa,
                           const std::vector<float>& x, int T) {
  const int64_t N = w.rows, C = w.cols;
  std::vector<float> out(size_t(N * T), NAN);
  std::vector<const float*> xs;
  for (int t = 0; t < T; ++t) xs.push_back(x.data() + t * C);
  for (int64_t n = 0; n < N; n += cpu::kMaxTileRows) {
    const int rows = int(std::min<int64_t>(cpu::kMaxTileRows, N - n));
    if (w.quantized()) {
      cpu::QRows q;
      q.dtype = w.dtype;
      q.group = w.group;
      q.cols = C;
      q.n = rows;
      for (int r = 0; r < rows; ++r) {
        q.codes[r] = cpu::q_row_codes(w, n + r);
        q.scales[r] = cpu::q_row_scales(w, n + r);
        q.mins[r] = cpu::q_row_mins(w, n + r);
      }
      K.qdot(q, qa->rows.data(), T, out.data() + n, 1, N);
    } else {
      cpu::FRows f;
      f.dtype = w.dtype;
      f.cols = C;
      f.n = rows;
      for (int r = 0; r < rows; ++r) f.data[r] = cpu::f_row(w, n + r);
      K.fdot(f, xs.data(), T, out.data() + n, 1, N);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("activation quantization: half a step per block, same codes on every level") {
  std::mt19937 rng(1);
  for (int64_t C : {32, 96, 4096 + 160}) {
    const std::vector<float> x = make_x(3, C, rng);
    std::vector<float> first;
    for (const test::KernelLevel& level : test::kernel_levels()) {
      const CpuIsa isa = level.k->isa;
      CAPTURE(level.name);
      CAPTURE(C);
      const QuantizedActs q = quantize(*level.k, x, 3, C);
      std::vector<float> deq;
      for (int t = 0; t < 3; ++t) {
        for (int64_t b = 0; b < C / 32; ++b) {
          float amax = 0, sum = 0;
          for (int j = 0; j < 32; ++j)
            amax = std::max(amax, std::fabs(x[size_t(t * C + b * 32 + j)]));
          REQUIRE(q.rows[t].s[b] == doctest::Approx(amax / 127).epsilon(1e-6));
          for (int j = 0; j < 32; ++j) {
            const float v = act_value(q.rows[t], C, isa, b * 32 + j);
            CHECK(std::fabs(v - x[size_t(t * C + b * 32 + j)]) <= amax / 254 * 1.0001f + 1e-30f);
            sum += v;
            deq.push_back(v);
          }
          CHECK(std::fabs(q.rows[t].bsum[b] - sum) <= 1e-5f * amax * 32);
        }
      }
      if (first.empty())
        first = deq;
      else
        CHECK(deq == first);
    }
  }
}

TEST_CASE("quantized dot tiles equal the int8 arithmetic and the reference within its bound") {
  const test::WeightFormat formats[] = {
      {DType::kQ4, 32, false}, {DType::kQ4, 64, true},  {DType::kQ4, 128, false},
      {DType::kQ4, 32, true},  {DType::kQ8, 32, false}, {DType::kQ8, 128, false},
  };
  std::mt19937 rng(2);
  for (const test::KernelLevel& level : test::kernel_levels()) {
    const CpuIsa isa = level.k->isa;
    const cpu::CpuKernels& K = *level.k;
    for (const test::WeightFormat& f : formats) {
      // One block (odd count), three blocks, two groups, and more than one K-segment.
      for (int64_t C : {int64_t(f.group), int64_t(3 * 32), int64_t(2 * f.group), int64_t(4224)}) {
        if (C % f.group) continue;
        for (int64_t N : {1, 3, 7, 37}) {
          const test::OwnedMat m = test::make_mat(f, N, C, rng, 1.0f / std::sqrt(float(C)));
          for (int T : {1, 2, 3, 5, 9}) {
            CAPTURE(level.name);
            const std::string dt_name = dtype_name(f.dtype);
            CAPTURE(dt_name);
            CAPTURE(f.group);
            CAPTURE(f.asymmetric);
            CAPTURE(C);
            CAPTURE(N);
            CAPTURE(T);
            const std::vector<float> x = make_x(T, C, rng);
            const QuantizedActs qa = quantize(K, x, T, C);
            const std::vector<float> got = run_dot(K, m.view, &qa, x, T);
            std::vector<float> want(size_t(N * T));
            ref::matmul(x.data(), T, m.view, want.data());
            std::vector<float> wrow(static_cast<size_t>(C));
            int bad_exact = 0, bad_ref = 0;
            for (int64_t n = 0; n < N; ++n) {
              dequantize_row(m.view, n, wrow.data());
              for (int t = 0; t < T; ++t) {
                double exact = 0, mag = 0, bound = 0, mag_x = 0;
                for (int64_t c = 0; c < C; ++c) {
                  const double xh = act_value(qa.rows[t], C, isa, c);
                  exact += double(wrow[c]) * xh;
                  mag += std::fabs(double(wrow[c]) * xh);
                  mag_x += std::fabs(double(wrow[c]) * x[size_t(t * C + c)]);
                  bound += std::fabs(double(wrow[c])) * qa.rows[t].s[c / 32] * 127.0 / 254.0;
                }
                const double g = got[size_t(t * N + n)];
                if (!(std::fabs(g - exact) <= 1e-5 * mag + 1e-6)) ++bad_exact;
                if (!(std::fabs(g - want[size_t(t * N + n)]) <=
                      bound * 1.0001 + 2e-5 * mag_x + 1e-6))
                  ++bad_ref;
              }
            }
            CHECK(bad_exact == 0);
            CHECK(bad_ref == 0);
          }
        }
      }
    }
  }
}

TEST_CASE("float dot tiles (F32, F16, BF16 weights) equal the reference") {
  std::mt19937 rng(3);
  for (const test::KernelLevel& level : test::kernel_levels()) {
    const CpuIsa isa = level.k->isa;
    const cpu::CpuKernels& K = *level.k;
    for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
      for (int64_t C : {1, 7, 16, 33, 100, 4100}) {
        for (int64_t N : {1, 5, 6}) {
          const test::OwnedMat m = test::make_mat({dt, 0, false}, N, C, rng);
          for (int T : {1, 2, 3, 4, 7}) {
            CAPTURE(level.name);
            const std::string dt_name = dtype_name(dt);
            CAPTURE(dt_name);
            CAPTURE(C);
            CAPTURE(N);
            CAPTURE(T);
            const std::vector<float> x = test::randn(size_t(T * C), rng);
            const std::vector<float> got = run_dot(K, m.view, nullptr, x, T);
            std::vector<float> want(size_t(N * T));
            ref::matmul(x.data(), T, m.view, want.data());
            std::vector<float> wrow(static_cast<size_t>(C));
            int bad = 0;
            for (int64_t n = 0; n < N; ++n) {
              dequantize_row(m.view, n, wrow.data());
              for (int t = 0; t < T; ++t) {
                double mag = 0;
                for (int64_t c = 0; c < C; ++c) mag += std::fabs(wrow[c] * x[size_t(t * C + c)]);
                if (!(std::fabs(got[size_t(t * N + n)] - want[size_t(t * N + n)]) <=
                      1e-5 * mag + 1e-7))
                  ++bad;
              }
            }
            CHECK(bad == 0);
          }
        }
      }
    }
  }
}

TEST_CASE("cpu instruction sets: names parse back, auto resolves to a supported level") {
  for (int i = -1; i < kCpuIsaCount; ++i)
    CHECK(parse_cpu_isa(cpu_isa_name(CpuIsa(i))) == CpuIsa(i));
  CHECK_THROWS_AS(parse_cpu_isa("sse9"), Error);
  CHECK(cpu_isa_supported(resolve_cpu_isa(CpuIsa::kAuto)));
  CHECK(cpu_isa_supported(CpuIsa::kScalar));
  for (int i = 0; i < kCpuIsaCount; ++i)
    if (!cpu_isa_supported(CpuIsa(i))) CHECK_THROWS_AS(resolve_cpu_isa(CpuIsa(i)), Error);
  MESSAGE("best level here: " << std::string(cpu_isa_name(best_cpu_isa())));
}
