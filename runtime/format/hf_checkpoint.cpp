// Hugging Face model directories as conversion input: F32/F16/BF16 safetensors (hub layout or
// transformers-5 fused experts) and GPTQ-Int4 checkpoints (qweight/qzeros/scales per linear).
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "runtime/format/checkpoint.h"
#include "runtime/format/gptq_source.h"
#include "runtime/format/safetensors.h"
#include "runtime/model/arch.h"

namespace cs {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::optional<std::string> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

json read_json_or_empty(const fs::path& p) {
  auto text = read_file(p);
  if (!text) return json::object();
  try {
    return json::parse(*text);
  } catch (const json::exception& e) {
    fail(ErrorKind::kBadFile, "{}: malformed JSON: {}", p.string(), e.what());
  }
}

DType view_dtype(const TensorRef& t) {
  switch (t.dtype) {
    case FileDType::kF32:
      return DType::kF32;
    case FileDType::kF16:
      return DType::kF16;
    case FileDType::kBF16:
      return DType::kBF16;
    default:
      fail(ErrorKind::kUnsupported, "{}: tensor '{}' has dtype {}, expected F32, F16 or BF16",
           t.file, t.name, file_dtype_name(t.dtype));
  }
}

class HfCheckpoint final : public Checkpoint {
 public:
  explicit HfCheckpoint(const std::string& dir)
      : dir_(dir),
        config_(load_hf_config_file((fs::path(dir) / "config.json").string())),
        src_(dir),
        spec_(arch_spec(config_.arch)) {
    for (const std::string& n : src_.names())
      if (n.size() > 8 && n.compare(n.size() - 8, 8, ".qweight") == 0) gptq_ = true;
    moe_ = spec_.moe_prefixes[0];
    if (!src_.find(fmt::format("model.layers.{}.{}.gate.weight", first_moe(), moe_)))
      moe_ = spec_.moe_prefixes[1];
  }

  const ModelConfig& config() const override { return config_; }
  const std::string& origin() const override { return dir_; }
  std::string kind() const override { return gptq_ ? "gptq" : "safetensors"; }

  std::unique_ptr<SourceMatrix> open(const WeightId& id) const override {
    const WeightShape s = weight_shape(config_, id);
    if (id.role == WeightRole::kExpertGate || id.role == WeightRole::kExpertUp ||
        id.role == WeightRole::kExpertDown) {
      if (auto fused = open_fused(id, s)) return fused;
    }
    const std::string base = hf_name(id);
    if (const TensorRef* qw = src_.find(base + ".qweight")) {
      const TensorRef* qz = src_.find(base + ".qzeros");
      const TensorRef* sc = src_.find(base + ".scales");
      if (!qz || !sc)
        fail(ErrorKind::kNotFound, "{}: GPTQ layer '{}' lacks qzeros or scales", dir_, base);
      auto m = gptq_source(base, *qw, *qz, *sc, src_.find(base + ".g_idx"));
      check(*m, base, s);
      return m;
    }
    const TensorRef* t = src_.find(base + ".weight");
    if (!t) fail(ErrorKind::kNotFound, "{}: missing tensor '{}.weight'", dir_, base);
    if (t->numel() != s.rows * s.cols || (t->shape.size() == 2 && t->shape[0] != s.rows))
      fail(ErrorKind::kBadFile, "{}: tensor '{}' has shape {}, expected [{}, {}] from config.json",
           t->file, t->name, t->shape_str(), s.rows, s.cols);
    return matview_source(view(*t, 0, s));
  }

  std::optional<TokenizerBlob> tokenizer() const override {
    if (auto t = read_file(fs::path(dir_) / "tokenizer.json"))
      return TokenizerBlob{"hf-tokenizer-json", std::move(*t)};
    if (auto t = read_file(fs::path(dir_) / "tokenizer.model"))
      return TokenizerBlob{"sentencepiece", std::move(*t)};
    return std::nullopt;
  }

  json chat() const override {
    json tc = read_json_or_empty(fs::path(dir_) / "tokenizer_config.json");
    json out = json::object();
    if (tc.contains("chat_template")) {
      out["chat_template"] = tc["chat_template"];
      tc.erase("chat_template");
    }
    if (auto t = read_file(fs::path(dir_) / "chat_template.jinja")) out["chat_template"] = *t;
    if (!tc.empty()) out["tokenizer_config"] = tc;
    json gen = read_json_or_empty(fs::path(dir_) / "generation_config.json");
    if (!gen.empty()) out["generation_config"] = gen;
    // What the model is, for the chat banner (a coldstream key in config.json).
    const json cfg = read_json_or_empty(fs::path(dir_) / "config.json");
    if (cfg.contains("coldstream_description") && cfg["coldstream_description"].is_string())
      out["description"] = cfg["coldstream_description"];
    return out;
  }

 private:
  int first_moe() const {
    for (int l = 0; l < config_.n_layers; ++l)
      if (config_.is_moe_layer(l)) return l;
    return 0;
  }

  // The hub name of a weight (without ".weight").
  std::string hf_name(const WeightId& id) const {
    const std::string p = fmt::format("model.layers.{}.{}.", id.layer, moe_);
    switch (id.role) {
      case WeightRole::kRouter:
        return p + "gate";
      case WeightRole::kExpertGate:
        return fmt::format("{}experts.{}.{}", p, id.expert, spec_.expert_gate);
      case WeightRole::kExpertUp:
        return fmt::format("{}experts.{}.{}", p, id.expert, spec_.expert_up);
      case WeightRole::kExpertDown:
        return fmt::format("{}experts.{}.{}", p, id.expert, spec_.expert_down);
      default:
        return canonical_name(id);
    }
  }

  // transformers 5: gate_up_proj [E, 2I, H] (gate rows first), down_proj [E, H, I].
  std::unique_ptr<SourceMatrix> open_fused(const WeightId& id, const WeightShape& s) const {
    const std::string p = fmt::format("model.layers.{}.{}.experts.", id.layer, moe_);
    const bool down = id.role == WeightRole::kExpertDown;
    const TensorRef* t = src_.find(p + (down ? "down_proj" : "gate_up_proj"));
    if (!t) return nullptr;
    const int64_t E = config_.n_experts, per = s.rows * s.cols * (down ? 1 : 2);
    if (t->numel() != E * per)
      fail(ErrorKind::kBadFile, "{}: tensor '{}' has shape {}, expected {} experts of {} weights",
           t->file, t->name, t->shape_str(), E, per);
    int64_t off = id.expert * per;
    if (id.role == WeightRole::kExpertUp) off += s.rows * s.cols;
    return matview_source(view(*t, off, s));
  }

  static MatView view(const TensorRef& t, int64_t offset, const WeightShape& s) {
    MatView v;
    v.dtype = view_dtype(t);
    v.data = t.data + size_t(offset) * file_dtype_size(t.dtype);
    v.rows = s.rows;
    v.cols = s.cols;
    return v;
  }

  void check(const SourceMatrix& m, const std::string& name, const WeightShape& s) const {
    if (m.rows() != s.rows || m.cols() != s.cols)
      fail(ErrorKind::kBadFile, "{}: GPTQ layer '{}' is [{}, {}], expected [{}, {}]", dir_, name,
           m.rows(), m.cols(), s.rows, s.cols);
  }

  std::string dir_;
  ModelConfig config_;
  SafetensorsDir src_;
  const ArchSpec& spec_;
  std::string moe_;
  bool gptq_ = false;
};

}  // namespace

std::unique_ptr<Checkpoint> open_hf_checkpoint(const std::string& dir) {
  return std::make_unique<HfCheckpoint>(dir);
}

std::unique_ptr<Checkpoint> open_checkpoint(const std::string& path) {
  if (!fs::exists(path)) fail(ErrorKind::kNotFound, "{}: no such file or directory", path);
  if (fs::is_directory(path)) return open_hf_checkpoint(path);
  std::ifstream in(path, std::ios::binary);
  uint8_t magic[8] = {};
  in.read(reinterpret_cast<char*>(magic), 8);
  if (in.gcount() >= 4 && std::memcmp(magic, "GGUF", 4) == 0) return open_gguf_checkpoint(path);
  if (is_packed_magic(magic, size_t(in.gcount()))) return open_packed_checkpoint(path);
  fail(ErrorKind::kUnsupported,
       "{}: not a Hugging Face directory, a GGUF file or a packed file (expected a directory "
       "with config.json, or a file starting with GGUF or CSTPACK)",
       path);
}

}  // namespace cs
