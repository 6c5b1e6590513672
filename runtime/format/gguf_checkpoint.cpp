// GGUF files (qwen3moe; llama with experts = Mixtral) as conversion input.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.h"
#include "runtime/format/checkpoint.h"
#include "runtime/format/gguf.h"
#include "runtime/format/gguf_quants.h"

namespace cs {
namespace {

using nlohmann::json;

// One matrix of a GGUF tensor: `rows` rows of `cols` weights starting `row0` rows in.
class GgufMatrix final : public SourceMatrix {
 public:
  GgufMatrix(const GgufTensor& t, int64_t row0, int64_t rows, int64_t cols)
      : SourceMatrix(rows, cols), t_(t), row_bytes_(gguf_row_bytes(t.type, cols)), row0_(row0) {}
  void row_f32(int64_t r, float* out) const override {
    gguf_dequantize(t_.type, row(r), cols(), out);
  }
  std::optional<TensorFormat> native() const override { return gguf_native_format(t_.type); }
  void row_native(int64_t r, uint8_t* codes, uint16_t* scales, uint16_t* mins) const override {
    gguf_transcode_row(t_.type, row(r), cols(), codes, scales, mins);
  }

 private:
  const uint8_t* row(int64_t r) const { return t_.data + uint64_t(row0_ + r) * row_bytes_; }
  const GgufTensor& t_;
  uint64_t row_bytes_;
  int64_t row0_;
};

class GgufCheckpoint final : public Checkpoint {
 public:
  explicit GgufCheckpoint(const std::string& path) : model_(path) {
    const json& m = model_.meta();
    arch_ = str("general.architecture");
    const std::string a = arch_ + ".";
    ModelConfig& c = config_;
    c.n_experts = m.contains(a + "expert_count") ? num(a + "expert_count") : 0;
    if (arch_ == "qwen3moe") {
      c.arch = Arch::kQwen3Moe;
      c.model_type = "qwen3_moe";
      c.qk_norm = true;
      c.moe_intermediate_size = num(a + "expert_feed_forward_length");
      c.norm_topk_prob = m.value(a + "expert_weights_norm", true);
    } else if (arch_ == "llama" && c.n_experts > 0) {
      c.arch = Arch::kMixtral;
      c.model_type = "mixtral";
      c.qk_norm = false;
      c.moe_intermediate_size = num(a + "feed_forward_length");
      c.norm_topk_prob = true;
    } else {
      fail(ErrorKind::kUnsupported,
           "{}: GGUF architecture '{}'{} is not supported (expected qwen3moe, or llama with "
           "experts: Mixtral)",
           path, arch_, arch_ == "llama" ? " without experts" : "");
    }
    c.n_layers = num(a + "block_count");
    c.hidden_size = num(a + "embedding_length");
    c.n_heads = num(a + "attention.head_count");
    c.n_kv_heads =
        m.contains(a + "attention.head_count_kv") ? num(a + "attention.head_count_kv") : c.n_heads;
    c.head_dim = m.contains(a + "attention.key_length") ? num(a + "attention.key_length")
                                                        : c.hidden_size / std::max(1, c.n_heads);
    c.n_experts_per_tok = num(a + "expert_used_count");
    c.rms_norm_eps = float(real(a + "attention.layer_norm_rms_epsilon", 1e-6));
    c.rope_theta = real(a + "rope.freq_base", 10000.0);
    c.max_position_embeddings = m.contains(a + "context_length") ? num(a + "context_length") : 4096;
    if (m.value(a + "rope.scaling.type", std::string()) == "yarn") {
      c.rope_scaling.type = "yarn";
      c.rope_scaling.factor = real(a + "rope.scaling.factor", 0.0);
      c.rope_scaling.original_max_position = m.contains(a + "rope.scaling.original_context_length")
                                                 ? num(a + "rope.scaling.original_context_length")
                                                 : 0;
    }
    c.torch_dtype = "bfloat16";
    const GgufTensor& embd = need("token_embd.weight");
    if (embd.dims.size() != 2 || embd.dims[1] >= (int64_t(1) << 31))
      fail(ErrorKind::kBadFile, "{}: token_embd.weight must be 2-D", path);
    c.vocab_size = int(embd.dims[1]);
    c.tie_word_embeddings = model_.find("output.weight") == nullptr;
    c.bos_token_id =
        m.contains("tokenizer.ggml.bos_token_id") ? num("tokenizer.ggml.bos_token_id") : -1;
    if (!m.value("tokenizer.ggml.add_bos_token", c.arch == Arch::kMixtral)) c.bos_token_id = -1;
    if (m.contains("tokenizer.ggml.eos_token_id"))
      c.eos_token_ids.push_back(num("tokenizer.ggml.eos_token_id"));
    c.validate(path);
  }

  const ModelConfig& config() const override { return config_; }
  const std::string& origin() const override { return model_.path(); }
  std::string kind() const override { return "gguf"; }

  std::unique_ptr<SourceMatrix> open(const WeightId& id) const override {
    const WeightShape s = weight_shape(config_, id);
    const std::string b = fmt::format("blk.{}.", id.layer);
    auto plain = [&](const std::string& n) { return matrix(need(n + ".weight"), 0, s); };
    switch (id.role) {
      case WeightRole::kEmbed:
        return plain("token_embd");
      case WeightRole::kFinalNorm:
        return plain("output_norm");
      case WeightRole::kLmHead:
        return plain("output");
      case WeightRole::kAttnNorm:
        return plain(b + "attn_norm");
      case WeightRole::kFfnNorm:
        return plain(b + "ffn_norm");
      case WeightRole::kQ:
        return unpermute(plain(b + "attn_q"), config_.n_heads);
      case WeightRole::kK:
        return unpermute(plain(b + "attn_k"), config_.n_kv_heads);
      case WeightRole::kV:
        return plain(b + "attn_v");
      case WeightRole::kO:
        return plain(b + "attn_output");
      case WeightRole::kQNorm:
        return plain(b + "attn_q_norm");
      case WeightRole::kKNorm:
        return plain(b + "attn_k_norm");
      case WeightRole::kRouter:
        return plain(b + "ffn_gate_inp");
      case WeightRole::kDenseGate:
        return plain(b + "ffn_gate");
      case WeightRole::kDenseUp:
        return plain(b + "ffn_up");
      case WeightRole::kDenseDown:
        return plain(b + "ffn_down");
      case WeightRole::kExpertGate:
        return expert(b, "ffn_gate", id.expert, s);
      case WeightRole::kExpertUp:
        return expert(b, "ffn_up", id.expert, s);
      case WeightRole::kExpertDown:
        return expert(b, "ffn_down", id.expert, s);
    }
    return nullptr;
  }

  std::optional<TokenizerBlob> tokenizer() const override {
    json t = json::object();
    for (const auto& [k, v] : model_.meta().items())
      if (k.rfind("tokenizer.", 0) == 0 && k != "tokenizer.chat_template") t[k] = v;
    if (t.empty()) return std::nullopt;
    return TokenizerBlob{"gguf-vocab", t.dump(-1, ' ', false, json::error_handler_t::replace)};
  }

  json chat() const override {
    json out = json::object();
    if (model_.meta().contains("tokenizer.chat_template"))
      out["chat_template"] = model_.meta()["tokenizer.chat_template"];
    return out;
  }

 private:
  const GgufTensor& need(const std::string& name) const {
    const GgufTensor* t = model_.find(name);
    if (!t) fail(ErrorKind::kNotFound, "{}: missing tensor '{}'", model_.path(), name);
    if (!ggml_type_supported(t->type))
      fail(ErrorKind::kUnsupported,
           "{}: tensor '{}' has GGML type {}, which is not supported (expected F32, F16, BF16, "
           "Q4_0, Q4_1, Q8_0, Q4_K or Q6_K)",
           t->file, name, ggml_type_name(t->type));
    return *t;
  }

  // Rows [row0, row0 + s.rows) of `t`, whose fastest dimension must be s.cols.
  std::unique_ptr<SourceMatrix> matrix(const GgufTensor& t, int64_t row0, const WeightShape& s,
                                       int64_t total_rows = -1) const {
    if (total_rows < 0) total_rows = s.rows;
    if (t.dims[0] != s.cols || t.numel() != total_rows * s.cols)
      fail(ErrorKind::kBadFile,
           "{}: tensor '{}' has dims [{}], expected {} rows of {} from the "
           "metadata",
           t.file, t.name, fmt::join(t.dims, ", "), total_rows, s.cols);
    return std::make_unique<GgufMatrix>(t, row0, s.rows, s.cols);
  }

  // Stacked experts (ffn_gate_exps [H, I, E]) or, in older Mixtral files, one tensor each.
  std::unique_ptr<SourceMatrix> expert(const std::string& b, const char* kind, int e,
                                       const WeightShape& s) const {
    if (model_.find(b + kind + "_exps.weight"))
      return matrix(need(b + kind + "_exps.weight"), int64_t(e) * s.rows, s,
                    s.rows * config_.n_experts);
    return matrix(need(fmt::format("{}{}.{}.weight", b, kind, e)), 0, s);
  }

  // llama.cpp's converter permutes Mixtral's Q/K rows for adjacent-pair RoPE: within each head
  // of D rows, Hugging Face row j * D/2 + i is stored as row 2 * i + j. Undo it.
  std::unique_ptr<SourceMatrix> unpermute(std::unique_ptr<SourceMatrix> m, int heads) const {
    if (config_.arch != Arch::kMixtral) return m;
    const int64_t D = m->rows() / heads, half = D / 2;
    std::vector<int64_t> perm(size_t(m->rows()));
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t j = 0; j < 2; ++j)
        for (int64_t i = 0; i < half; ++i) perm[size_t(h * D + j * half + i)] = h * D + 2 * i + j;
    return permuted_rows(std::move(m), std::move(perm));
  }

  std::string str(const std::string& key) const {
    const json& m = model_.meta();
    if (!m.contains(key) || !m[key].is_string())
      fail(ErrorKind::kBadFile, "{}: missing metadata '{}' (expected a string)", model_.path(),
           key);
    return m[key].get<std::string>();
  }
  int num(const std::string& key) const {
    const json& m = model_.meta();
    if (!m.contains(key) || !m[key].is_number_integer() || m[key].get<int64_t>() < 0 ||
        m[key].get<int64_t>() > (int64_t(1) << 31) - 1)
      fail(ErrorKind::kBadFile, "{}: missing or invalid metadata '{}' (expected an integer)",
           model_.path(), key);
    return int(m[key].get<int64_t>());
  }
  double real(const std::string& key, double fallback) const {
    const json& m = model_.meta();
    if (!m.contains(key)) return fallback;
    if (!m[key].is_number())
      fail(ErrorKind::kBadFile, "{}: metadata '{}' must be a number", model_.path(), key);
    return m[key].get<double>();
  }

  GgufModel model_;
  std::string arch_;
  ModelConfig config_;
};

}  // namespace

std::unique_ptr<Checkpoint> open_gguf_checkpoint(const std::string& path) {
  return std::make_unique<GgufCheckpoint>(path);
}

}  // namespace cs
