// Every weight of a model named once, independently of any file format: a role, a layer and an
// expert. Readers (Hugging Face, GPTQ, GGUF) map ids to their own tensor names; the packed file
// stores non-expert tensors under canonical_name(id) and experts as blobs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/model/config.h"

namespace cs {

enum class WeightRole {
  kEmbed,
  kFinalNorm,
  kLmHead,
  kAttnNorm,
  kFfnNorm,
  kQ,
  kK,
  kV,
  kO,
  kQNorm,
  kKNorm,
  kRouter,
  kDenseGate,
  kDenseUp,
  kDenseDown,
  kExpertGate,
  kExpertUp,
  kExpertDown,
};

// The classes a quantization policy chooses a format for.
enum class WeightClass { kEmbeddings, kLmHead, kAttention, kDense, kNorm, kRouter, kExperts };

struct WeightId {
  WeightRole role = WeightRole::kEmbed;
  int layer = -1;   // -1 for model-level weights
  int expert = -1;  // experts only
};

WeightClass weight_class(WeightRole role);
const char* weight_class_name(WeightClass c);

// "model.embed_tokens", "model.layers.3.self_attn.q_proj", "model.layers.3.mlp.experts.5.up_proj"
// (Qwen3-MoE hub names, used for every architecture; no ".weight" suffix).
std::string canonical_name(const WeightId& id);

// [rows, cols] of a weight as y = W x (vectors are one row).
struct WeightShape {
  int64_t rows = 0, cols = 0;
};
WeightShape weight_shape(const ModelConfig& c, const WeightId& id);

// The non-expert weights of a model in file order (lm_head omitted when tied).
std::vector<WeightId> non_expert_weights(const ModelConfig& c);

// Indices of the MoE layers.
std::vector<int> moe_layers(const ModelConfig& c);

}  // namespace cs
