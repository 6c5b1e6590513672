#include <vector>

#include "kernels/cpu/ref_ops.h"
#include "kernels/quant.h"

namespace cs::ref {

float dot(const float* a, const float* b, int64_t n) {
  // Eight independent partial sums: vectorisable and closer to a blocked GEMM's rounding.
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float s = 0;
  for (; i < n; ++i) s += a[i] * b[i];
  for (int j = 0; j < 8; ++j) s += acc[j];
  return s;
}

void gemv(const MatView& w, const float* x, float* y) {
  if (w.dtype == DType::kF32) {
    const float* p = static_cast<const float*>(w.data);
    for (int64_t n = 0; n < w.rows; ++n) y[n] = dot(p + n * w.cols, x, w.cols);
    return;
  }
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t n = 0; n < w.rows; ++n) {
    dequantize_row(w, n, row.data());
    y[n] = dot(row.data(), x, w.cols);
  }
}

void matmul(const float* x, int T, const MatView& w, float* out) {
  if (T == 1 || w.dtype == DType::kF32) {
    for (int t = 0; t < T; ++t) gemv(w, x + int64_t(t) * w.cols, out + int64_t(t) * w.rows);
    return;
  }
  // Dequantize each weight row once and use it for every token.
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t n = 0; n < w.rows; ++n) {
    dequantize_row(w, n, row.data());
    for (int t = 0; t < T; ++t)
      out[int64_t(t) * w.rows + n] = dot(row.data(), x + int64_t(t) * w.cols, w.cols);
  }
}

void embed(const MatView& table, const int32_t* ids, int T, float* out) {
  for (int t = 0; t < T; ++t) dequantize_row(table, ids[t], out + int64_t(t) * table.cols);
}

}  // namespace cs::ref
