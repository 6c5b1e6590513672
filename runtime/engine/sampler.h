// Token sampling on the host: greedy, temperature, top-k, top-p, min-p, repetition penalty.
// Deterministic for a given seed.
#pragma once

#include <cstdint>
#include <random>
#include <span>

#include "kernels/backend.h"

namespace cs {

struct SamplingParams {
  bool greedy = false;              // argmax; ignores everything below
  float temperature = 0.7f;         // <= 0 means greedy
  int top_k = 20;                   // 0 = off
  float top_p = 0.8f;               // 1 = off
  float min_p = 0.0f;               // 0 = off; keep tokens with p >= min_p * p_max
  float repetition_penalty = 1.0f;  // 1 = off; divides positive logits of seen tokens (CTRL)
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) {}
  // `history` holds tokens already in the context, for the repetition penalty. Follows
  // ref::sample with the next uniform number of this sampler's generator.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);
  const SamplingParams& params() const { return p_; }
  // The rule's arguments (without the repetition penalty) and the next uniform number in
  // [0, 1): what a backend that samples on the device needs for one draw.
  SampleArgs args() const;
  float next_uniform();
  // Whether a backend can sample for this sampler (the repetition penalty needs the host).
  bool device_ok() const { return p_.repetition_penalty == 1.0f; }

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
};

// Index of the largest logit; the lowest index wins ties (as torch.argmax).
int32_t argmax(std::span<const float> logits);

}  // namespace cs
