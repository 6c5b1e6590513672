#include <cmath>
#include <vector>

#include "kernels/cpu/ref_ops.h"
#include "kernels/quant.h"

namespace cs::ref {
namespace {

// Normalises one row in place: x / sqrt(mean(x^2) + eps) * w, accumulated in fp32 as
// transformers does (it upcasts to fp32, normalises, casts back, then multiplies by w).
void rms_row(const float* x, const float* w, float eps, int dim, float* out) {
  float ss = 0;
  for (int i = 0; i < dim; ++i) ss += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(ss / float(dim) + eps);
  for (int i = 0; i < dim; ++i) out[i] = (x[i] * inv) * w[i];
}

}  // namespace

void rmsnorm(float* x, const float* residual, const MatView& w, float eps, int T, int dim,
             float* out) {
  std::vector<float> wf(static_cast<size_t>(dim));
  dequantize_row(w, 0, wf.data());
  for (int t = 0; t < T; ++t) {
    float* row = x + int64_t(t) * dim;
    if (residual)
      for (int i = 0; i < dim; ++i) row[i] += residual[int64_t(t) * dim + i];
    rms_row(row, wf.data(), eps, dim, out + int64_t(t) * dim);
  }
}

void norm_rope(float* x, int T, int heads, int head_dim, const MatView& norm, float eps, int pos0,
               const RopeArgs& rope) {
  std::vector<float> wf;
  if (!norm.empty()) {
    wf.resize(size_t(head_dim));
    dequantize_row(norm, 0, wf.data());
  }
  if (rope.pos) pos0 = *rope.pos;
  const int half = head_dim / 2;
  std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
  for (int t = 0; t < T; ++t) {
    for (int j = 0; j < half; ++j) {
      // fp32 angle, as transformers computes position * inv_freq in fp32.
      const float angle = float(pos0 + t) * rope.inv_freq[j];
      cs[j] = std::cos(angle) * rope.attn_factor;
      sn[j] = std::sin(angle) * rope.attn_factor;
    }
    for (int h = 0; h < heads; ++h) {
      float* v = x + (int64_t(t) * heads + h) * head_dim;
      if (!norm.empty()) rms_row(v, wf.data(), eps, head_dim, v);
      for (int j = 0; j < half; ++j) {
        const float a = v[j], b = v[j + half];
        v[j] = a * cs[j] - b * sn[j];
        v[j + half] = b * cs[j] + a * sn[j];
      }
    }
  }
}

}  // namespace cs::ref
