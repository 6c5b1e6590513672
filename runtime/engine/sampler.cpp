#include "runtime/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>
#include <vector>

namespace cs {

int32_t argmax(std::span<const float> logits) {
  return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  std::vector<float> l(logits.begin(), logits.end());
  if (p_.repetition_penalty != 1.0f) {
    std::unordered_set<int32_t> seen(history.begin(), history.end());
    for (int32_t t : seen)
      if (t >= 0 && size_t(t) < l.size())
        l[t] = l[t] > 0 ? l[t] / p_.repetition_penalty : l[t] * p_.repetition_penalty;
  }
  if (p_.greedy || p_.temperature <= 0) return argmax(l);
  // Candidates sorted by logit, cut by top-k.
  std::vector<int32_t> idx(l.size());
  std::iota(idx.begin(), idx.end(), 0);
  size_t n = idx.size();
  if (p_.top_k > 0 && size_t(p_.top_k) < n) n = size_t(p_.top_k);
  std::partial_sort(idx.begin(), idx.begin() + n, idx.end(),
                    [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
  idx.resize(n);
  std::vector<double> p(n);
  const double mx = l[idx[0]];
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += (p[i] = std::exp((l[idx[i]] - mx) / p_.temperature));
  for (double& v : p) v /= sum;
  // min-p relative to the most likely token, then top-p (nucleus) over what is left.
  size_t keep = n;
  if (p_.min_p > 0)
    while (keep > 1 && p[keep - 1] < p_.min_p * p[0]) --keep;
  if (p_.top_p < 1.0f) {
    double cum = 0;
    for (size_t i = 0; i < keep; ++i) {
      cum += p[i];
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += p[i];
  double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  for (size_t i = 0; i < keep; ++i) {
    r -= p[i];
    if (r <= 0) return idx[i];
  }
  return idx[keep - 1];
}

}  // namespace cs
