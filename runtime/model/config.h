// The architecture description of a model: sizes and switches, read from a Hugging Face
// config.json (hub keys and the keys newer transformers writes) or a packed file's header.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace cs {

enum class Arch { kQwen3Moe, kMixtral };

struct RopeScaling {
  std::string type = "default";   // "default" or "yarn"
  double factor = 0.0;            // 0 = max_position_embeddings / original_max_position
  int original_max_position = 0;  // YaRN: the pre-extension context
  double beta_fast = 32.0, beta_slow = 1.0;
  double attention_factor = 0.0;  // 0 = derived from factor (0.1 ln(factor) + 1)
  bool truncate = true;
};

struct ModelConfig {
  Arch arch = Arch::kQwen3Moe;
  std::string model_type;  // "qwen3_moe" or "mixtral"
  int vocab_size = 0;
  int hidden_size = 0;  // H
  int n_layers = 0;
  int n_heads = 0;                // Q
  int n_kv_heads = 0;             // KV
  int head_dim = 0;               // D, from config (not hidden / heads)
  int n_experts = 0;              // E
  int n_experts_per_tok = 0;      // K
  int moe_intermediate_size = 0;  // I of a routed expert
  int intermediate_size = 0;      // I of a dense MLP layer
  bool norm_topk_prob = true;     // renormalise the K kept router probabilities
  bool qk_norm = true;            // per-head RMSNorm of q and k before RoPE
  float rms_norm_eps = 1e-6f;
  double rope_theta = 1e6;
  RopeScaling rope_scaling;
  int max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  std::vector<int> mlp_only_layers;  // Qwen3-MoE: layers with a dense MLP
  int decoder_sparse_step = 1;       // Qwen3-MoE: every n-th layer is MoE
  int bos_token_id = -1;
  std::vector<int> eos_token_ids;
  std::string torch_dtype = "float32";

  bool is_moe_layer(int layer) const;
  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  // Throws cs::Error naming `source` and the field when a size is missing or inconsistent.
  void validate(const std::string& source) const;
};

// Reads a Hugging Face config.json. `path` is used in error messages.
ModelConfig parse_hf_config(const nlohmann::json& j, const std::string& path);
ModelConfig load_hf_config_file(const std::string& path);

// The same config as canonical JSON (hub key names), for packed-file headers.
nlohmann::json config_to_json(const ModelConfig& c);

// RoPE inverse frequencies [D/2] and the attention factor that multiplies cos and sin,
// computed as transformers does (default and YaRN).
std::vector<float> rope_inv_freq(const ModelConfig& c, float* attn_factor);

}  // namespace cs
