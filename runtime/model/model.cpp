#include "runtime/model/model.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "runtime/format/packed_reader.h"
#include "runtime/format/safetensors.h"
#include "runtime/model/arch.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cs {

namespace {

// Expert weights that are host views into mapped files (Hugging Face directories).
class ResidentExpertStore final : public ExpertStore {
 public:
  ResidentExpertStore(int n_layers, int n_experts)
      : n_experts_(n_experts),
        experts_(size_t(n_layers), std::vector<ExpertWeights>(size_t(n_experts))) {}
  int n_layers() const override { return int(experts_.size()); }
  int n_experts() const override { return n_experts_; }
  ExpertWeights host_view(int layer, int expert) const override { return experts_[layer][expert]; }
  ExpertWeights& at(int layer, int expert) { return experts_[layer][expert]; }

 private:
  int n_experts_;
  std::vector<std::vector<ExpertWeights>> experts_;
};

DType weight_dtype(const TensorRef& t) {
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

}  // namespace

// Finds tensors by name in a source and checks their shapes and dtypes against the config.
class HfWeightBinder {
 public:
  HfWeightBinder(const TensorSource& src, const ModelConfig& c)
      : src_(src), c_(c), spec_(arch_spec(c.arch)) {}

  const TensorRef* find(const std::string& name) const {
    if (const TensorRef* t = src_.find(name)) return t;
    return src_.find(name + ".weight");
  }

  const TensorRef& need(const std::string& name) const {
    const TensorRef* t = src_.find(name + ".weight");
    if (!t) t = src_.find(name);
    if (!t) fail(ErrorKind::kNotFound, "{}: missing tensor '{}.weight'", src_.origin(), name);
    return *t;
  }

  void check_shape(const TensorRef& t, std::vector<int64_t> want) const {
    if (t.shape != want) {
      TensorRef w;
      w.shape = want;
      fail(ErrorKind::kBadFile, "{}: tensor '{}' has shape {}, expected {} from config.json",
           t.file, t.name, t.shape_str(), w.shape_str());
    }
  }

  MatView matrix(const std::string& name, int64_t rows, int64_t cols) const {
    const TensorRef& t = need(name);
    check_shape(t, {rows, cols});
    return view(t, 0, rows, cols);
  }

  MatView vector(const std::string& name, int64_t n) const {
    const TensorRef& t = need(name);
    check_shape(t, {n});
    return view(t, 0, 1, n);
  }

  // A [rows][cols] view starting `offset` elements into a tensor.
  static MatView view(const TensorRef& t, int64_t offset, int64_t rows, int64_t cols) {
    MatView v;
    v.dtype = weight_dtype(t);
    v.data = t.data + size_t(offset) * file_dtype_size(t.dtype);
    v.rows = rows;
    v.cols = cols;
    return v;
  }

  void bind(ModelWeights& w, ResidentExpertStore& store) const {
    const int64_t H = c_.hidden_size, V = c_.vocab_size, D = c_.head_dim;
    w.embed = matrix("model.embed_tokens", V, H);
    w.final_norm = vector("model.norm", H);
    if (c_.tie_word_embeddings && !find("lm_head.weight"))
      w.lm_head = w.embed;
    else
      w.lm_head = matrix("lm_head", V, H);
    w.layers.resize(size_t(c_.n_layers));
    for (int l = 0; l < c_.n_layers; ++l) {
      const std::string p = fmt::format("model.layers.{}.", l);
      LayerWeights& L = w.layers[l];
      L.attn_norm = vector(p + "input_layernorm", H);
      L.ffn_norm = vector(p + "post_attention_layernorm", H);
      L.wq = matrix(p + "self_attn.q_proj", c_.q_dim(), H);
      L.wk = matrix(p + "self_attn.k_proj", c_.kv_dim(), H);
      L.wv = matrix(p + "self_attn.v_proj", c_.kv_dim(), H);
      L.wo = matrix(p + "self_attn.o_proj", H, c_.q_dim());
      if (c_.qk_norm) {
        L.q_norm = vector(p + "self_attn.q_norm", D);
        L.k_norm = vector(p + "self_attn.k_norm", D);
      }
      if (c_.is_moe_layer(l))
        bind_moe(l, p, L, store);
      else
        bind_dense(p, L);
    }
  }

 private:
  void bind_dense(const std::string& p, LayerWeights& L) const {
    const int64_t H = c_.hidden_size, I = c_.intermediate_size;
    L.dense.gate = matrix(p + "mlp.gate_proj", I, H);
    L.dense.up = matrix(p + "mlp.up_proj", I, H);
    L.dense.down = matrix(p + "mlp.down_proj", H, I);
  }

  void bind_moe(int l, const std::string& p, LayerWeights& L, ResidentExpertStore& store) const {
    const int64_t H = c_.hidden_size, I = c_.moe_intermediate_size, E = c_.n_experts;
    // The MoE block may be under the hub prefix or the transformers-5 prefix.
    std::string moe = p + spec_.moe_prefixes[0] + ".";
    if (!find(moe + "gate") && find(p + spec_.moe_prefixes[1] + ".gate"))
      moe = p + spec_.moe_prefixes[1] + ".";
    L.router = matrix(moe + "gate", E, H);
    // Fused 3-D tensors (transformers 5): gate_up_proj [E, 2I, H] with the gate half first,
    // down_proj [E, H, I].
    if (const TensorRef* gu = find(moe + "experts.gate_up_proj")) {
      const TensorRef* dn = find(moe + "experts.down_proj");
      if (!dn)
        fail(ErrorKind::kNotFound, "{}: missing tensor '{}experts.down_proj'", src_.origin(), moe);
      check_shape(*gu, {E, 2 * I, H});
      check_shape(*dn, {E, H, I});
      for (int64_t e = 0; e < E; ++e) {
        ExpertWeights& x = store.at(l, int(e));
        x.gate = view(*gu, e * 2 * I * H, I, H);
        x.up = view(*gu, e * 2 * I * H + I * H, I, H);
        x.down = view(*dn, e * H * I, H, I);
      }
      return;
    }
    for (int64_t e = 0; e < E; ++e) {
      const std::string x = fmt::format("{}experts.{}.", moe, e);
      ExpertWeights& w = store.at(l, int(e));
      w.gate = matrix(x + spec_.expert_gate, I, H);
      w.up = matrix(x + spec_.expert_up, I, H);
      w.down = matrix(x + spec_.expert_down, H, I);
    }
  }

  const TensorSource& src_;
  const ModelConfig& c_;
  const ArchSpec& spec_;
};

Model::~Model() = default;

void Model::set_tokenizer(std::unique_ptr<Tokenizer> t) {
  tokenizer_ = std::move(t);
}

bool is_packed_model_path(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) fail(ErrorKind::kNotFound, "{}: no such file or directory", path);
  if (fs::is_directory(path)) return false;
  std::ifstream in(path, std::ios::binary);
  uint8_t magic[8] = {};
  in.read(reinterpret_cast<char*>(magic), sizeof(magic));
  if (is_packed_magic(magic, size_t(in.gcount()))) return true;
  if (in.gcount() >= 4 && std::memcmp(magic, "GGUF", 4) == 0)
    fail(ErrorKind::kUnsupported,
         "{}: GGUF files are not loaded directly; convert it first: coldstream convert {} "
         "MODEL.cst",
         path, path);
  fail(ErrorKind::kUnsupported,
       "{}: expected a Hugging Face model directory or a packed .cst file (a directory holds "
       "config.json and *.safetensors)",
       path);
}

std::unique_ptr<Model> Model::load(const std::string& path) {
  namespace fs = std::filesystem;
  if (is_packed_model_path(path)) return load_packed(path);
  ModelConfig config = load_hf_config_file((fs::path(path) / "config.json").string());
  auto model = from_source(std::move(config), std::make_unique<SafetensorsDir>(path));
  model->path_ = path;
  // tokenizer.json or tokenizer.model, with tokenizer_config.json, when the directory has them.
  model->set_tokenizer(load_tokenizer_dir(path));
  std::ifstream cfg(fs::path(path) / "config.json");
  const nlohmann::json j = nlohmann::json::parse(cfg, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("coldstream_description") &&
      j["coldstream_description"].is_string())
    model->description_ = j["coldstream_description"].get<std::string>();
  return model;
}

std::unique_ptr<Model> Model::from_source(ModelConfig config,
                                          std::unique_ptr<TensorSource> source) {
  std::unique_ptr<Model> m(new Model());
  m->config_ = std::move(config);
  m->path_ = source->origin();
  auto store = std::make_unique<ResidentExpertStore>(m->config_.n_layers, m->config_.n_experts);
  HfWeightBinder(*source, m->config_).bind(m->weights_, *store);
  m->experts_ = std::move(store);
  m->sources_.push_back(std::move(source));
  return m;
}

std::unique_ptr<Model> Model::from_weights(ModelConfig config, ModelWeights weights,
                                           std::vector<std::vector<ExpertWeights>> experts,
                                           std::shared_ptr<void> owner) {
  config.validate("in-memory model");
  if (int(weights.layers.size()) != config.n_layers || int(experts.size()) != config.n_layers)
    fail(ErrorKind::kInvalidArgument,
         "in-memory model: {} layers of weights and {} of experts for {} layers",
         weights.layers.size(), experts.size(), config.n_layers);
  std::unique_ptr<Model> m(new Model());
  m->config_ = std::move(config);
  m->path_ = "(in memory)";
  m->weights_ = std::move(weights);
  auto store = std::make_unique<ResidentExpertStore>(m->config_.n_layers, m->config_.n_experts);
  for (int l = 0; l < m->config_.n_layers; ++l)
    for (size_t e = 0; e < experts[l].size() && int(e) < m->config_.n_experts; ++e)
      store->at(l, int(e)) = experts[l][e];
  m->experts_ = std::move(store);
  m->owner_ = std::move(owner);
  return m;
}

}  // namespace cs
