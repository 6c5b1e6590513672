// Model::load_packed: a model over a packed file's mapping.
#include <atomic>
#include <filesystem>
#include <memory>

#include "common/error.h"
#include "runtime/format/packed_reader.h"
#include "runtime/model/model.h"
#include "runtime/model/weight_id.h"
#include "runtime/tokenizer/hf_json.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cs {
namespace {

// Expert blobs in the mapping. Each blob's checksum is checked the first time it is viewed, so
// a corrupt expert fails with its layer and expert named instead of computing garbage.
// Thread-safety: host_view may be called concurrently (two threads may both verify a blob).
class PackedExpertStore final : public ExpertStore {
 public:
  explicit PackedExpertStore(std::shared_ptr<const PackedFile> file)
      : file_(std::move(file)),
        moe_index_(size_t(file_->config().n_layers), -1),
        verified_(new std::atomic<uint8_t>[file_->index().expert_xxh3.size()]()) {
    const std::vector<int>& layers = file_->index().moe_layers;
    for (size_t m = 0; m < layers.size(); ++m) moe_index_[size_t(layers[m])] = int(m);
  }
  int n_layers() const override { return file_->config().n_layers; }
  int n_experts() const override { return file_->config().n_experts; }
  ExpertWeights host_view(int layer, int expert) const override {
    const int m = moe_index_.at(size_t(layer));
    if (m < 0 || expert < 0 || expert >= n_experts()) return {};
    std::atomic<uint8_t>& ok = verified_[size_t(m) * size_t(n_experts()) + size_t(expert)];
    if (!ok.load(std::memory_order_acquire)) {
      file_->verify_expert(size_t(m), expert);
      ok.store(1, std::memory_order_release);
    }
    return file_->expert(size_t(m), expert);
  }

 private:
  std::shared_ptr<const PackedFile> file_;
  std::vector<int> moe_index_;
  std::unique_ptr<std::atomic<uint8_t>[]> verified_;
};

std::unique_ptr<Tokenizer> packed_tokenizer(const PackedFile& file) {
  const auto blob = file.tokenizer_blob();
  if (!blob) return nullptr;
  auto tok = load_tokenizer(blob->kind, blob->bytes, file.path());
  // The chat template and BOS/EOS come from the tokenizer_config.json the converter stored.
  nlohmann::json config = file.chat().value("tokenizer_config", nlohmann::json::object());
  if (file.chat().contains("chat_template")) config["chat_template"] = file.chat()["chat_template"];
  if (!config.empty()) {
    TokenizerInfo info = tok->info();
    apply_hf_tokenizer_config(config.dump(), file.path() + " (tokenizer_config)", &info);
    tok->set_info(std::move(info));
  }
  return tok;
}

}  // namespace

std::unique_ptr<Tokenizer> load_model_tokenizer(const std::string& path, std::string* model_type) {
  if (!is_packed_model_path(path)) {
    const std::filesystem::path cfg = std::filesystem::path(path) / "config.json";
    if (model_type && std::filesystem::exists(cfg))
      *model_type = load_hf_config_file(cfg.string()).model_type;
    return load_tokenizer_dir(path);
  }
  const PackedFile file(path);
  if (model_type) *model_type = file.config().model_type;
  return packed_tokenizer(file);
}

std::unique_ptr<Model> Model::load_packed(const std::string& path) {
  auto file = std::make_shared<const PackedFile>(path);
  file->verify_resident();
  std::unique_ptr<Model> m(new Model());
  m->path_ = path;
  m->config_ = file->config();
  const ModelConfig& c = m->config_;
  ModelWeights& w = m->weights_;
  // PackedFile::parse has checked that every tensor below exists with its shape.
  auto get = [&](WeightRole r, int layer = -1) { return file->tensor(canonical_name({r, layer})); };
  w.embed = get(WeightRole::kEmbed);
  w.final_norm = get(WeightRole::kFinalNorm);
  w.lm_head = c.tie_word_embeddings ? w.embed : get(WeightRole::kLmHead);
  w.layers.resize(size_t(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights& L = w.layers[size_t(l)];
    L.attn_norm = get(WeightRole::kAttnNorm, l);
    L.ffn_norm = get(WeightRole::kFfnNorm, l);
    L.wq = get(WeightRole::kQ, l);
    L.wk = get(WeightRole::kK, l);
    L.wv = get(WeightRole::kV, l);
    L.wo = get(WeightRole::kO, l);
    if (c.qk_norm) {
      L.q_norm = get(WeightRole::kQNorm, l);
      L.k_norm = get(WeightRole::kKNorm, l);
    }
    if (c.is_moe_layer(l)) {
      L.router = get(WeightRole::kRouter, l);
    } else {
      L.dense.gate = get(WeightRole::kDenseGate, l);
      L.dense.up = get(WeightRole::kDenseUp, l);
      L.dense.down = get(WeightRole::kDenseDown, l);
    }
  }
  m->experts_ = std::make_unique<PackedExpertStore>(file);
  m->set_tokenizer(packed_tokenizer(*file));
  if (file->chat().contains("description") && file->chat()["description"].is_string())
    m->description_ = file->chat()["description"].get<std::string>();
  m->packed_ = std::move(file);
  return m;
}

}  // namespace cs
