#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/cpu/ref_ops.h"

namespace cs::ref {

void router(const float* logits, int T, int n_experts, int k, bool renormalize, int32_t* ids,
            float* weights) {
  std::vector<float> p(static_cast<size_t>(n_experts));
  std::vector<int> order(static_cast<size_t>(n_experts));
  for (int t = 0; t < T; ++t) {
    const float* l = logits + int64_t(t) * n_experts;
    const float mx = *std::max_element(l, l + n_experts);
    float sum = 0;
    for (int e = 0; e < n_experts; ++e) sum += (p[e] = std::exp(l[e] - mx));
    for (int e = 0; e < n_experts; ++e) p[e] /= sum;
    std::iota(order.begin(), order.end(), 0);
    // Highest probability first; equal probabilities keep the lower expert index first.
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float kept = 0;
    for (int j = 0; j < k; ++j) kept += p[order[j]];
    for (int j = 0; j < k; ++j) {
      ids[int64_t(t) * k + j] = order[j];
      weights[int64_t(t) * k + j] = renormalize ? p[order[j]] / kept : p[order[j]];
    }
  }
}

void moe(const MoeArgs& a) {
  if (!a.accumulate) std::fill(a.out, a.out + int64_t(a.T) * a.hidden, 0.0f);
  std::vector<float> g, u, y(static_cast<size_t>(a.hidden));
  for (int t = 0; t < a.T; ++t) {
    const float* x = a.x + int64_t(t) * a.hidden;
    for (int j = 0; j < a.k; ++j) {
      const int e = a.ids[int64_t(t) * a.k + j];
      const ExpertWeights& w = a.table[e];
      if (!w.present()) continue;
      g.resize(size_t(w.gate.rows));
      u.resize(size_t(w.up.rows));
      gemv(w.gate, x, g.data());
      gemv(w.up, x, u.data());
      for (size_t i = 0; i < g.size(); ++i) g[i] = silu(g[i]) * u[i];
      gemv(w.down, g.data(), y.data());
      const float gate = a.weights[int64_t(t) * a.k + j];
      float* o = a.out + int64_t(t) * a.hidden;
      for (int h = 0; h < a.hidden; ++h) o[h] += gate * y[h];
    }
  }
}

}  // namespace cs::ref
