// Measures how a model routes: runs a random prompt and samples a continuation on a backend,
// recording every MoE layer's expert choices. Benchmarks print it: a model whose tokens all
// pick the same experts makes every cache look perfect (BENCHMARKS.md, "routing is real").
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/backend.h"
#include "runtime/model/model.h"

namespace cs {

struct RoutingStats {
  int tokens = 0;                            // tokens whose routing was recorded
  std::vector<int> layers;                   // MoE layer indices
  std::vector<std::vector<int64_t>> counts;  // [layer][expert] selections
  bool finite = true;                        // every logit was finite

  // Entropy of a layer's expert distribution divided by log(E): 1 = perfectly uniform.
  double normalized_entropy(size_t i) const;
  int experts_used(size_t i) const;
  double min_normalized_entropy() const;
  double mean_normalized_entropy() const;
  int min_experts_used() const;
  // Share of selections taken by the most popular expert of layer i.
  double top_share(size_t i) const;
};

// Prefills `prompt_tokens` random tokens, then samples `decode_tokens` tokens at temperature 1
// (deterministic for `seed`), recording routing throughout.
RoutingStats probe_routing(const Model& model, Backend& backend, int prompt_tokens,
                           int decode_tokens, uint64_t seed);

}  // namespace cs
