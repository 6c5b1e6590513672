// The INT4 (and INT8) kernels of the backend against dequantize-then-FP32, over odd shapes and
// every group size, symmetric and asymmetric. New backends (AVX, CUDA) must pass the same test.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/backend.h"
#include "kernels/expert_layout.h"
#include "kernels/quant.h"

using namespace cs;

namespace {

struct QMat {
  std::vector<uint8_t> codes;
  std::vector<uint16_t> scales, mins;
  MatView view;
};

QMat random_q4(int64_t rows, int64_t cols, int group, bool asym, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0, 1);
  QMat m;
  m.codes.resize(size_t(rows * cols / 2));
  m.scales.resize(size_t(rows * cols / group));
  m.mins.resize(asym ? m.scales.size() : 0);
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (float& x : row) x = d(rng) + (asym ? 0.3f : 0.0f);
    quantize_row_q4(row, group, asym, &m.codes[size_t(r * cols / 2)],
                    &m.scales[size_t(r * cols / group)],
                    asym ? &m.mins[size_t(r * cols / group)] : nullptr);
  }
  m.view = {DType::kQ4, m.codes.data(), m.scales.data(), asym ? m.mins.data() : nullptr, rows,
            cols,       group};
  return m;
}

// y = W x by dequantizing each row to floats and summing in double.
std::vector<double> reference(const MatView& w, const float* x, int T) {
  std::vector<double> y(size_t(T * w.rows));
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    dequantize_row(w, r, row.data());
    for (int t = 0; t < T; ++t) {
      double s = 0;
      for (int64_t c = 0; c < w.cols; ++c) s += double(row[size_t(c)]) * x[t * w.cols + c];
      y[size_t(t * w.rows + r)] = s;
    }
  }
  return y;
}

}  // namespace

TEST_CASE("INT4 matmul equals dequantize-then-FP32 within 1e-5 (odd shapes, all groups)") {
  auto be = make_cpu_reference_backend();
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0, 1);
  for (int group : {32, 64, 128})
    for (bool asym : {false, true})
      for (int64_t rows : {3, 7, 37})
        for (int T : {1, 5}) {
          const int64_t cols = group * 3;
          QMat m = random_q4(rows, cols, group, asym, uint32_t(rows * 31 + group + asym));
          std::vector<float> x(size_t(T * cols)), y(size_t(T * rows));
          for (float& v : x) v = d(rng);
          be->matmul(x.data(), T, m.view, y.data());
          const std::vector<double> want = reference(m.view, x.data(), T);
          double num = 0, den = 0;
          for (size_t i = 0; i < y.size(); ++i) {
            num = std::max(num, std::fabs(y[i] - want[i]));
            den = std::max(den, std::fabs(want[i]));
          }
          CAPTURE(group);
          CAPTURE(asym);
          CAPTURE(rows);
          CAPTURE(T);
          CHECK(num / den < 1e-5);
        }
}

TEST_CASE("MoE over packed INT4 expert blobs equals the same experts dequantized to FP32") {
  auto be = make_cpu_reference_backend();
  const int H = 96, I = 64, E = 3, K = 2, T = 4;
  for (bool asym : {false, true}) {
    const ExpertLayout L = make_expert_layout(DType::kQ4, H, I, 32, asym);
    std::vector<std::vector<uint8_t>> blobs(E, std::vector<uint8_t>(L.bytes, 0));
    std::vector<ExpertWeights> q(E), f(E);
    std::vector<std::vector<float>> dense(E * 3);
    std::mt19937 rng(9);
    std::normal_distribution<float> d(0, 0.2f);
    for (int e = 0; e < E; ++e) {
      const MatLayout* mats[3] = {&L.gate, &L.up, &L.down};
      for (int i = 0; i < 3; ++i) {
        const MatLayout& m = *mats[i];
        std::vector<float> row(static_cast<size_t>(m.cols));
        for (int64_t r = 0; r < m.rows; ++r) {
          for (float& v : row) v = d(rng);
          quantize_row_q4(
              row, 32, asym, blobs[e].data() + m.data_offset + r * m.cols / 2,
              reinterpret_cast<uint16_t*>(blobs[e].data() + m.scales_offset) + r * m.cols / 32,
              asym ? reinterpret_cast<uint16_t*>(blobs[e].data() + m.mins_offset) + r * m.cols / 32
                   : nullptr);
        }
      }
      q[e] = expert_views(L, blobs[e].data());
      const MatView* src[3] = {&q[e].gate, &q[e].up, &q[e].down};
      MatView* dst[3] = {&f[e].gate, &f[e].up, &f[e].down};
      for (int i = 0; i < 3; ++i) {
        std::vector<float>& v = dense[size_t(e * 3 + i)];
        v.resize(size_t(src[i]->rows * src[i]->cols));
        for (int64_t r = 0; r < src[i]->rows; ++r)
          dequantize_row(*src[i], r, &v[size_t(r * src[i]->cols)]);
        *dst[i] = {DType::kF32, v.data(), nullptr, nullptr, src[i]->rows, src[i]->cols, 0};
      }
    }
    std::vector<float> x(T * H), w = {0.6f, 0.4f, 0.7f, 0.3f, 0.5f, 0.5f, 0.9f, 0.1f};
    for (float& v : x) v = d(rng) * 5;
    const std::vector<int32_t> ids = {0, 1, 2, 0, 1, 2, 2, 1};
    std::vector<float> yq(T * H), yf(T * H);
    MoeArgs a;
    a.x = x.data();
    a.T = T;
    a.hidden = H;
    a.ids = ids.data();
    a.weights = w.data();
    a.k = K;
    a.table = q.data();
    a.n_experts = E;
    a.dtype = DType::kQ4;
    a.inter = int(q[0].gate.rows);
    a.out = yq.data();
    be->moe(a);
    a.table = f.data();
    a.dtype = DType::kF32;
    a.out = yf.data();
    be->moe(a);
    double num = 0, den = 0;
    for (size_t i = 0; i < yq.size(); ++i) {
      num = std::max(num, double(std::fabs(yq[i] - yf[i])));
      den = std::max(den, double(std::fabs(yf[i])));
    }
    CAPTURE(asym);
    CHECK(num / den < 1e-5);
  }
}
