#include "runtime/engine/sampler.h"

#include <algorithm>
#include <unordered_set>
#include <vector>

#include "kernels/cpu/ref_ops.h"

namespace cs {

int32_t argmax(std::span<const float> logits) {
  return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

SampleArgs Sampler::args() const {
  SampleArgs a;
  a.greedy = p_.greedy || p_.temperature <= 0;
  a.temperature = p_.temperature;
  a.top_k = p_.top_k;
  a.top_p = p_.top_p;
  a.min_p = p_.min_p;
  return a;
}

float Sampler::next_uniform() {
  // 24 random bits: exactly representable floats in [0, 1), never 1.
  return float(rng_() >> 40) * 0x1p-24f;
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  const float u = next_uniform();
  if (p_.repetition_penalty == 1.0f)
    return ref::sample(logits.data(), int(logits.size()), args(), u);
  std::vector<float> l(logits.begin(), logits.end());
  std::unordered_set<int32_t> seen(history.begin(), history.end());
  for (int32_t t : seen)
    if (t >= 0 && size_t(t) < l.size())
      l[t] = l[t] > 0 ? l[t] / p_.repetition_penalty : l[t] * p_.repetition_penalty;
  return ref::sample(l.data(), int(l.size()), args(), u);
}

}  // namespace cs
