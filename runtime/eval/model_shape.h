// The sizes a capacity plan needs from a model: how many experts of how many bytes, what else
// must sit on the GPU (attention, embeddings, norms, routers: the dense part) and the KV cache
// per token. From a model file (the packed experts' real blob size) or from a config alone
// (a `coldstream synth` shape name: Q4 group-32 experts and Q8 dense weights, the packed file's
// defaults).
#pragma once

#include <cstdint>
#include <string>

#include "runtime/model/config.h"

namespace cs {

struct ModelShape {
  std::string name;
  int n_layers = 0, n_moe_layers = 0, n_experts = 0, k = 0, hidden = 0;
  uint64_t expert_bytes = 0;        // one expert blob (gate, up, down)
  uint64_t dense_bytes = 0;         // every non-expert weight
  uint64_t embed_bytes = 0;         // of which the input embedding (decode reads one row of it)
  uint64_t kv_bytes_per_token = 0;  // all layers, K and V, fp16
  double active_params = 0;         // parameters one token uses (dense + k experts per layer)

  uint64_t expert_total() const { return uint64_t(n_moe_layers) * uint64_t(n_experts); }
  uint64_t experts_bytes() const { return expert_total() * expert_bytes; }
};

ModelShape model_shape_from_config(const ModelConfig& c, const std::string& name);
// `what`: a synth shape name (qwen3-235b-a22b, ...), a .cst file or a Hugging Face directory.
ModelShape load_model_shape(const std::string& what);

}  // namespace cs
