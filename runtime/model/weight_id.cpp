#include "runtime/model/weight_id.h"

#include <fmt/format.h>

namespace cs {

WeightClass weight_class(WeightRole role) {
  switch (role) {
    case WeightRole::kEmbed:
      return WeightClass::kEmbeddings;
    case WeightRole::kLmHead:
      return WeightClass::kLmHead;
    case WeightRole::kFinalNorm:
    case WeightRole::kAttnNorm:
    case WeightRole::kFfnNorm:
    case WeightRole::kQNorm:
    case WeightRole::kKNorm:
      return WeightClass::kNorm;
    case WeightRole::kQ:
    case WeightRole::kK:
    case WeightRole::kV:
    case WeightRole::kO:
      return WeightClass::kAttention;
    case WeightRole::kRouter:
      return WeightClass::kRouter;
    case WeightRole::kDenseGate:
    case WeightRole::kDenseUp:
    case WeightRole::kDenseDown:
      return WeightClass::kDense;
    case WeightRole::kExpertGate:
    case WeightRole::kExpertUp:
    case WeightRole::kExpertDown:
      return WeightClass::kExperts;
  }
  return WeightClass::kAttention;
}

const char* weight_class_name(WeightClass c) {
  switch (c) {
    case WeightClass::kEmbeddings:
      return "embeddings";
    case WeightClass::kLmHead:
      return "lm_head";
    case WeightClass::kAttention:
      return "attention";
    case WeightClass::kDense:
      return "dense";
    case WeightClass::kNorm:
      return "norms";
    case WeightClass::kRouter:
      return "routers";
    case WeightClass::kExperts:
      return "experts";
  }
  return "?";
}

std::string canonical_name(const WeightId& id) {
  const std::string p = fmt::format("model.layers.{}.", id.layer);
  const std::string x = fmt::format("{}mlp.experts.{}.", p, id.expert);
  switch (id.role) {
    case WeightRole::kEmbed:
      return "model.embed_tokens";
    case WeightRole::kFinalNorm:
      return "model.norm";
    case WeightRole::kLmHead:
      return "lm_head";
    case WeightRole::kAttnNorm:
      return p + "input_layernorm";
    case WeightRole::kFfnNorm:
      return p + "post_attention_layernorm";
    case WeightRole::kQ:
      return p + "self_attn.q_proj";
    case WeightRole::kK:
      return p + "self_attn.k_proj";
    case WeightRole::kV:
      return p + "self_attn.v_proj";
    case WeightRole::kO:
      return p + "self_attn.o_proj";
    case WeightRole::kQNorm:
      return p + "self_attn.q_norm";
    case WeightRole::kKNorm:
      return p + "self_attn.k_norm";
    case WeightRole::kRouter:
      return p + "mlp.gate";
    case WeightRole::kDenseGate:
      return p + "mlp.gate_proj";
    case WeightRole::kDenseUp:
      return p + "mlp.up_proj";
    case WeightRole::kDenseDown:
      return p + "mlp.down_proj";
    case WeightRole::kExpertGate:
      return x + "gate_proj";
    case WeightRole::kExpertUp:
      return x + "up_proj";
    case WeightRole::kExpertDown:
      return x + "down_proj";
  }
  return "?";
}

WeightShape weight_shape(const ModelConfig& c, const WeightId& id) {
  const int64_t H = c.hidden_size, V = c.vocab_size, D = c.head_dim;
  const int64_t I = c.moe_intermediate_size, F = c.intermediate_size;
  switch (id.role) {
    case WeightRole::kEmbed:
    case WeightRole::kLmHead:
      return {V, H};
    case WeightRole::kFinalNorm:
    case WeightRole::kAttnNorm:
    case WeightRole::kFfnNorm:
      return {1, H};
    case WeightRole::kQNorm:
    case WeightRole::kKNorm:
      return {1, D};
    case WeightRole::kQ:
      return {c.q_dim(), H};
    case WeightRole::kK:
    case WeightRole::kV:
      return {c.kv_dim(), H};
    case WeightRole::kO:
      return {H, c.q_dim()};
    case WeightRole::kRouter:
      return {c.n_experts, H};
    case WeightRole::kDenseGate:
    case WeightRole::kDenseUp:
      return {F, H};
    case WeightRole::kDenseDown:
      return {H, F};
    case WeightRole::kExpertGate:
    case WeightRole::kExpertUp:
      return {I, H};
    case WeightRole::kExpertDown:
      return {H, I};
  }
  return {};
}

std::vector<WeightId> non_expert_weights(const ModelConfig& c) {
  std::vector<WeightId> out = {{WeightRole::kEmbed}, {WeightRole::kFinalNorm}};
  if (!c.tie_word_embeddings) out.push_back({WeightRole::kLmHead});
  for (int l = 0; l < c.n_layers; ++l) {
    for (WeightRole r : {WeightRole::kAttnNorm, WeightRole::kFfnNorm, WeightRole::kQ,
                         WeightRole::kK, WeightRole::kV, WeightRole::kO})
      out.push_back({r, l});
    if (c.qk_norm) {
      out.push_back({WeightRole::kQNorm, l});
      out.push_back({WeightRole::kKNorm, l});
    }
    if (c.is_moe_layer(l)) {
      out.push_back({WeightRole::kRouter, l});
    } else {
      for (WeightRole r : {WeightRole::kDenseGate, WeightRole::kDenseUp, WeightRole::kDenseDown})
        out.push_back({r, l});
    }
  }
  return out;
}

std::vector<int> moe_layers(const ModelConfig& c) {
  std::vector<int> out;
  for (int l = 0; l < c.n_layers; ++l)
    if (c.is_moe_layer(l)) out.push_back(l);
  return out;
}

}  // namespace cs
