#include "runtime/model/config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <type_traits>

#include "common/error.h"

namespace cs {
namespace {

using nlohmann::json;

// True when an integer JSON value fits an int (values from files are not trusted).
bool fits_int(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= uint64_t(std::numeric_limits<int>::max());
  const int64_t i = v.get<int64_t>();
  return i >= std::numeric_limits<int>::min() && i <= std::numeric_limits<int>::max();
}

// Converts a JSON value to T, checking type and range first (a bare v.get<T>() of an
// out-of-range number is undefined behaviour). Throws naming the field.
template <typename T>
T checked_get(const json& v, const char* key, const std::string& path) {
  if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, std::string>) {
    if ((std::is_same_v<T, bool> && !v.is_boolean()) ||
        (std::is_same_v<T, std::string> && !v.is_string()))
      fail(ErrorKind::kBadFile, "{}: field '{}' has the wrong type: {}", path, key, v.dump());
    return v.get<T>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer() || !fits_int(v))
      fail(ErrorKind::kBadFile, "{}: field '{}' must be a 32-bit integer, got {}", path, key,
           v.dump());
    return v.get<T>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number() || !(std::fabs(v.get<double>()) <= double(std::numeric_limits<T>::max())))
      fail(ErrorKind::kBadFile, "{}: field '{}' must be a number, got {}", path, key, v.dump());
    return T(v.get<double>());
  } else {  // std::vector<int>
    if (!v.is_array())
      fail(ErrorKind::kBadFile, "{}: field '{}' must be an array, got {}", path, key, v.dump());
    T out;
    for (const json& e : v) out.push_back(checked_get<typename T::value_type>(e, key, path));
    return out;
  }
}

// Reads an integer field that must be present.
int need_int(const json& j, const char* key, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null())
    fail(ErrorKind::kBadFile, "{}: missing field '{}' (expected an integer)", path, key);
  if (!it->is_number_integer() || !fits_int(*it))
    fail(ErrorKind::kBadFile, "{}: field '{}' must be a 32-bit integer, got {}", path, key,
         it->dump());
  return it->get<int>();
}

// The first of several spellings of a field that is present, or nullptr.
const json* find_any(const json& j, std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    auto it = j.find(k);
    if (it != j.end() && !it->is_null()) return &*it;
  }
  return nullptr;
}

template <typename T>
T get_or(const json& j, std::initializer_list<const char*> keys, T fallback,
         const std::string& path) {
  const json* v = find_any(j, keys);
  if (!v) return fallback;
  return checked_get<T>(*v, *keys.begin(), path);
}

void parse_rope(const json& j, ModelConfig& c, const std::string& path) {
  // Hub files: rope_theta + rope_scaling {type|rope_type, factor, ...}. transformers 5 writes
  // rope_parameters {rope_type, rope_theta, factor, ...}.
  const json* params = find_any(j, {"rope_parameters"});
  const json* scaling = find_any(j, {"rope_scaling"});
  c.rope_theta = get_or<double>(j, {"rope_theta"}, 0.0, path);
  if (params && params->is_object()) {
    if (c.rope_theta == 0.0) c.rope_theta = get_or<double>(*params, {"rope_theta"}, 0.0, path);
    if (!scaling) scaling = params;
  }
  if (c.rope_theta <= 0)
    fail(ErrorKind::kBadFile, "{}: missing or invalid 'rope_theta' (expected a positive number)",
         path);
  if (!scaling || !scaling->is_object()) return;
  const std::string type = get_or<std::string>(*scaling, {"rope_type", "type"}, "default", path);
  if (type == "default") return;
  if (type != "yarn")
    fail(ErrorKind::kUnsupported,
         "{}: rope scaling type '{}' is not supported (expected default or yarn)", path, type);
  RopeScaling& r = c.rope_scaling;
  r.type = type;
  r.factor = get_or<double>(*scaling, {"factor"}, 0.0, path);
  r.original_max_position = get_or<int>(*scaling, {"original_max_position_embeddings"}, 0, path);
  r.beta_fast = get_or<double>(*scaling, {"beta_fast"}, 32.0, path);
  r.beta_slow = get_or<double>(*scaling, {"beta_slow"}, 1.0, path);
  r.attention_factor = get_or<double>(*scaling, {"attention_factor"}, 0.0, path);
  r.truncate = get_or<bool>(*scaling, {"truncate"}, true, path);
  if (!(r.factor > 0) && r.original_max_position <= 0)
    fail(ErrorKind::kBadFile,
         "{}: yarn rope scaling needs 'factor' or 'original_max_position_embeddings'", path);
}

}  // namespace

bool ModelConfig::is_moe_layer(int layer) const {
  if (arch == Arch::kMixtral) return true;
  for (int l : mlp_only_layers)
    if (l == layer) return false;
  return n_experts > 0 && decoder_sparse_step > 0 && (layer + 1) % decoder_sparse_step == 0;
}

void ModelConfig::validate(const std::string& source) const {
  auto positive = [&](int v, const char* name) {
    if (v <= 0) fail(ErrorKind::kBadFile, "{}: '{}' must be positive, got {}", source, name, v);
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(n_layers, "num_hidden_layers");
  positive(n_heads, "num_attention_heads");
  positive(n_kv_heads, "num_key_value_heads");
  positive(head_dim, "head_dim");
  if (n_heads % n_kv_heads != 0)
    fail(ErrorKind::kBadFile,
         "{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", source,
         n_heads, n_kv_heads);
  if (int64_t(n_heads) * head_dim > std::numeric_limits<int>::max())
    fail(ErrorKind::kBadFile, "{}: num_attention_heads x head_dim ({} x {}) is too large", source,
         n_heads, head_dim);
  if (head_dim % 2 != 0)
    fail(ErrorKind::kBadFile, "{}: head_dim ({}) must be even for RoPE", source, head_dim);
  bool any_moe = false, any_dense = false;
  for (int l = 0; l < n_layers; ++l) (is_moe_layer(l) ? any_moe : any_dense) = true;
  if (any_moe) {
    positive(n_experts, "num_experts");
    positive(n_experts_per_tok, "num_experts_per_tok");
    positive(moe_intermediate_size,
             arch == Arch::kMixtral ? "intermediate_size" : "moe_intermediate_size");
    if (n_experts_per_tok > n_experts)
      fail(ErrorKind::kBadFile, "{}: num_experts_per_tok ({}) exceeds num_experts ({})", source,
           n_experts_per_tok, n_experts);
  }
  if (any_dense) positive(intermediate_size, "intermediate_size");
  if (!(rms_norm_eps > 0)) fail(ErrorKind::kBadFile, "{}: 'rms_norm_eps' must be positive", source);
}

ModelConfig parse_hf_config(const json& j, const std::string& path) {
  if (!j.is_object()) fail(ErrorKind::kBadFile, "{}: expected a JSON object", path);
  ModelConfig c;
  c.model_type = get_or<std::string>(j, {"model_type"}, "", path);
  if (c.model_type == "qwen3_moe") {
    c.arch = Arch::kQwen3Moe;
  } else if (c.model_type == "mixtral") {
    c.arch = Arch::kMixtral;
  } else if (c.model_type.empty()) {
    fail(ErrorKind::kBadFile, "{}: missing field 'model_type' (expected qwen3_moe or mixtral)",
         path);
  } else {
    fail(ErrorKind::kUnsupported,
         "{}: architecture '{}' is not supported (expected qwen3_moe or mixtral)", path,
         c.model_type);
  }
  if (get_or<bool>(j, {"attention_bias"}, false, path))
    fail(ErrorKind::kUnsupported, "{}: attention_bias = true is not supported", path);
  c.vocab_size = need_int(j, "vocab_size", path);
  c.hidden_size = need_int(j, "hidden_size", path);
  c.n_layers = need_int(j, "num_hidden_layers", path);
  c.n_heads = need_int(j, "num_attention_heads", path);
  c.n_kv_heads = get_or<int>(j, {"num_key_value_heads"}, c.n_heads, path);
  c.head_dim = get_or<int>(j, {"head_dim"}, c.n_heads > 0 ? c.hidden_size / c.n_heads : 0, path);
  c.rms_norm_eps = get_or<float>(j, {"rms_norm_eps"}, 1e-6f, path);
  c.max_position_embeddings = get_or<int>(j, {"max_position_embeddings"}, 4096, path);
  c.tie_word_embeddings = get_or<bool>(j, {"tie_word_embeddings"}, false, path);
  c.torch_dtype = get_or<std::string>(j, {"torch_dtype", "dtype"}, "float32", path);
  c.bos_token_id = get_or<int>(j, {"bos_token_id"}, -1, path);
  if (const json* eos = find_any(j, {"eos_token_id"})) {
    if (eos->is_array())
      c.eos_token_ids = checked_get<std::vector<int>>(*eos, "eos_token_id", path);
    else
      c.eos_token_ids.push_back(checked_get<int>(*eos, "eos_token_id", path));
  }
  c.n_experts = get_or<int>(j, {"num_experts", "num_local_experts"}, 0, path);
  c.n_experts_per_tok = get_or<int>(j, {"num_experts_per_tok"}, 0, path);
  if (c.arch == Arch::kQwen3Moe) {
    c.qk_norm = true;
    c.moe_intermediate_size = get_or<int>(j, {"moe_intermediate_size"}, 0, path);
    c.intermediate_size = get_or<int>(j, {"intermediate_size"}, 0, path);
    c.norm_topk_prob = get_or<bool>(j, {"norm_topk_prob"}, false, path);
    c.mlp_only_layers = get_or<std::vector<int>>(j, {"mlp_only_layers"}, {}, path);
    c.decoder_sparse_step = get_or<int>(j, {"decoder_sparse_step"}, 1, path);
  } else {
    c.qk_norm = false;
    c.moe_intermediate_size = get_or<int>(j, {"intermediate_size"}, 0, path);
    c.norm_topk_prob = true;  // Mixtral always renormalises its top-2
  }
  parse_rope(j, c, path);
  c.validate(path);
  return c;
}

ModelConfig load_hf_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    fail(ErrorKind::kNotFound, "{}: cannot open (a Hugging Face model directory needs config.json)",
         path);
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& e) {
    fail(ErrorKind::kBadFile, "{}: malformed JSON: {}", path, e.what());
  }
  return parse_hf_config(j, path);
}

json config_to_json(const ModelConfig& c) {
  json j = {
      {"model_type", c.model_type},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"num_hidden_layers", c.n_layers},
      {"num_attention_heads", c.n_heads},
      {"num_key_value_heads", c.n_kv_heads},
      {"head_dim", c.head_dim},
      {"num_experts_per_tok", c.n_experts_per_tok},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_theta", c.rope_theta},
      {"max_position_embeddings", c.max_position_embeddings},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"torch_dtype", c.torch_dtype},
      {"bos_token_id", c.bos_token_id},
      {"eos_token_id", c.eos_token_ids},
  };
  if (c.arch == Arch::kQwen3Moe) {
    j["num_experts"] = c.n_experts;
    j["moe_intermediate_size"] = c.moe_intermediate_size;
    j["intermediate_size"] = c.intermediate_size;
    j["norm_topk_prob"] = c.norm_topk_prob;
    j["mlp_only_layers"] = c.mlp_only_layers;
    j["decoder_sparse_step"] = c.decoder_sparse_step;
  } else {
    j["num_local_experts"] = c.n_experts;
    j["intermediate_size"] = c.moe_intermediate_size;
  }
  if (c.rope_scaling.type != "default") {
    const RopeScaling& r = c.rope_scaling;
    j["rope_scaling"] = {{"rope_type", r.type},
                         {"factor", r.factor},
                         {"beta_fast", r.beta_fast},
                         {"beta_slow", r.beta_slow},
                         {"truncate", r.truncate}};
    if (r.original_max_position > 0)
      j["rope_scaling"]["original_max_position_embeddings"] = r.original_max_position;
    if (r.attention_factor > 0) j["rope_scaling"]["attention_factor"] = r.attention_factor;
  }
  return j;
}

std::vector<float> rope_inv_freq(const ModelConfig& c, float* attn_factor) {
  const int D = c.head_dim, half = D / 2;
  const double base = c.rope_theta;
  std::vector<float> inv(static_cast<size_t>(half));
  // transformers: base ** (arange(0, D, 2).float() / D), in fp32.
  std::vector<float> pos_freq(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) pos_freq[i] = std::pow(float(base), float(2 * i) / float(D));
  *attn_factor = 1.0f;
  if (c.rope_scaling.type != "yarn") {
    for (int i = 0; i < half; ++i) inv[i] = 1.0f / pos_freq[i];
    return inv;
  }
  const RopeScaling& r = c.rope_scaling;
  // transformers 5: an explicit factor wins; without one, the factor is the ratio of the
  // configured context to original_max_position_embeddings. The correction range uses the
  // original context when given.
  const int original =
      r.original_max_position > 0 ? r.original_max_position : c.max_position_embeddings;
  double factor = r.factor;
  if (!(factor > 0) && r.original_max_position > 0)
    factor = double(c.max_position_embeddings) / original;
  auto mscale = [](double scale) { return scale <= 1 ? 1.0 : 0.1 * std::log(scale) + 1.0; };
  *attn_factor = float(r.attention_factor > 0 ? r.attention_factor : mscale(factor));
  auto correction_dim = [&](double rotations) {
    return (D * std::log(double(original) / (rotations * 2 * M_PI))) / (2 * std::log(base));
  };
  double low = correction_dim(r.beta_fast), high = correction_dim(r.beta_slow);
  if (r.truncate) low = std::floor(low), high = std::ceil(high);
  low = std::max(low, 0.0);
  high = std::min(high, double(D - 1));
  if (low == high) high += 0.001;
  for (int i = 0; i < half; ++i) {
    const float ramp = std::clamp(float((double(i) - low) / (high - low)), 0.0f, 1.0f);
    const float extrapolation = 1.0f - ramp;
    const float inv_extra = 1.0f / pos_freq[i];
    const float inv_inter = 1.0f / (float(factor) * pos_freq[i]);
    inv[i] = inv_inter * (1 - extrapolation) + inv_extra * extrapolation;
  }
  return inv;
}

}  // namespace cs
