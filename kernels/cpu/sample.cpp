// The sampling rule (see SampleArgs in kernels/backend.h). The host Sampler and the CUDA
// sampling kernel both follow it, so a given uniform number picks the same token everywhere.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/cpu/ref_ops.h"

namespace cs::ref {

int32_t sample(const float* l, int V, const SampleArgs& s, float u) {
  if (s.greedy || s.temperature <= 0)
    return int32_t(std::max_element(l, l + V) - l);  // first maximum: lowest index on ties
  // Candidates sorted by logit (ties: lower index first), cut by top-k.
  std::vector<int32_t> idx(static_cast<size_t>(V));
  std::iota(idx.begin(), idx.end(), 0);
  size_t n = idx.size();
  if (s.top_k > 0 && size_t(s.top_k) < n) n = size_t(s.top_k);
  std::partial_sort(idx.begin(), idx.begin() + n, idx.end(),
                    [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
  idx.resize(n);
  std::vector<double> p(n);
  const double mx = l[idx[0]];
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += (p[i] = std::exp((l[idx[i]] - mx) / s.temperature));
  for (double& v : p) v /= sum;
  // min-p relative to the most likely token, then top-p (nucleus) over what is left.
  size_t keep = n;
  if (s.min_p > 0)
    while (keep > 1 && p[keep - 1] < s.min_p * p[0]) --keep;
  if (s.top_p < 1.0f) {
    double cum = 0;
    for (size_t i = 0; i < keep; ++i) {
      cum += p[i];
      if (cum >= s.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += p[i];
  double r = double(u) * total;
  for (size_t i = 0; i < keep; ++i) {
    r -= p[i];
    if (r <= 0) return idx[i];
  }
  return idx[keep - 1];
}

}  // namespace cs::ref
