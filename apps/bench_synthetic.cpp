#include "apps/bench_synthetic.h"

#include <sys/mman.h>

#include <cmath>
#include <map>
#include <random>

#include "common/error.h"
#include "common/half.h"
#include "common/units.h"
#include "offload/blob_pack.h"
#include "runtime/format/tensor_source.h"

namespace cs::cli {
namespace {

// Tensors in memory. Expert tensors (never read when the offload engine serves experts from the
// blob file) all point into one untouched MAP_NORESERVE mapping, so they cost no RAM.
class MemorySource final : public TensorSource {
 public:
  explicit MemorySource(size_t phantom_bytes) : phantom_bytes_(phantom_bytes) {
    phantom_ = ::mmap(nullptr, phantom_bytes_, PROT_READ,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (phantom_ == MAP_FAILED) fail(ErrorKind::kOutOfMemory, "synthetic model: cannot map");
  }
  ~MemorySource() override { ::munmap(phantom_, phantom_bytes_); }
  const TensorRef* find(const std::string& name) const override {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
  }
  std::vector<std::string> names() const override {
    std::vector<std::string> n;
    for (const auto& [k, v] : tensors_) n.push_back(k);
    return n;
  }
  const std::string& origin() const override { return origin_; }

  // A BF16 tensor of normal(0, std) values.
  void add_random(const std::string& name, std::vector<int64_t> shape, float std,
                  std::mt19937_64& rng, const std::function<float(int64_t row)>& row_scale = {}) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    auto& buf = storage_.emplace_back(size_t(n) * 2);
    auto* p = reinterpret_cast<uint16_t*>(buf.data());
    std::normal_distribution<float> dist(0.0f, std);
    const int64_t cols = shape.back();
    for (int64_t i = 0; i < n; ++i)
      p[i] = f32_to_bf16(dist(rng) * (row_scale ? row_scale(i / cols) : 1.0f));
    put(name, std::move(shape), buf.data());
  }
  void add_ones(const std::string& name, int64_t n) {
    auto& buf = storage_.emplace_back(size_t(n) * 2);
    auto* p = reinterpret_cast<uint16_t*>(buf.data());
    for (int64_t i = 0; i < n; ++i) p[i] = f32_to_bf16(1.0f);
    put(name, {n}, buf.data());
  }
  void add_phantom(const std::string& name, std::vector<int64_t> shape) {
    put(name, std::move(shape), static_cast<const uint8_t*>(phantom_));
  }

 private:
  void put(const std::string& name, std::vector<int64_t> shape, const uint8_t* data) {
    TensorRef t;
    t.name = name;
    t.dtype = FileDType::kBF16;
    t.shape = std::move(shape);
    t.data = data;
    t.bytes = size_t(t.numel()) * 2;
    t.file = origin_;
    tensors_[name] = std::move(t);
  }
  std::string origin_ = "<synthetic>";
  size_t phantom_bytes_;
  void* phantom_;
  std::vector<std::vector<uint8_t>> storage_;
  std::map<std::string, TensorRef> tensors_;
};

ModelConfig shape_config(const SyntheticSpec& s) {
  ModelConfig c;
  c.model_type = "qwen3_moe";
  c.rms_norm_eps = 1e-6f;
  c.rope_theta = 1e6;
  c.max_position_embeddings = 40960;
  c.norm_topk_prob = true;
  c.torch_dtype = "bfloat16";
  c.eos_token_ids = {151645};
  c.head_dim = 128;
  if (s.shape == "tiny") {
    c.vocab_size = 1024, c.hidden_size = 256, c.n_layers = 4, c.n_heads = 4, c.n_kv_heads = 2;
    c.head_dim = 64, c.n_experts = 16, c.n_experts_per_tok = 4, c.moe_intermediate_size = 128;
  } else if (s.shape == "qwen3-30b-a3b") {
    c.vocab_size = 151936, c.hidden_size = 2048, c.n_layers = 48, c.n_heads = 32;
    c.n_kv_heads = 4, c.n_experts = 128, c.n_experts_per_tok = 8, c.moe_intermediate_size = 768;
  } else if (s.shape == "qwen3-235b-a22b") {
    c.vocab_size = 151936, c.hidden_size = 4096, c.n_layers = 94, c.n_heads = 64;
    c.n_kv_heads = 4, c.n_experts = 128, c.n_experts_per_tok = 8, c.moe_intermediate_size = 1536;
  } else if (s.shape == "mixtral-8x7b") {
    c.arch = Arch::kMixtral, c.model_type = "mixtral", c.qk_norm = false, c.rms_norm_eps = 1e-5f;
    c.vocab_size = 32000, c.hidden_size = 4096, c.n_layers = 32, c.n_heads = 32, c.n_kv_heads = 8;
    c.n_experts = 8, c.n_experts_per_tok = 2, c.moe_intermediate_size = 14336;
    c.eos_token_ids = {2};
  } else {
    fail(ErrorKind::kInvalidArgument,
         "--synthetic: unknown shape '{}' (tiny, qwen3-30b-a3b, qwen3-235b-a22b, mixtral-8x7b)",
         s.shape);
  }
  c.intermediate_size = c.moe_intermediate_size;
  if (s.layers > 0) c.n_layers = std::min(c.n_layers, s.layers);
  if (s.vocab > 0) c.vocab_size = s.vocab;
  return c;
}

}  // namespace

SyntheticModel make_synthetic_model(const SyntheticSpec& spec, const std::string& scratch_dir,
                                    const std::function<void(const std::string&)>& log) {
  const ModelConfig c = shape_config(spec);
  c.validate("--synthetic " + spec.shape);
  const int64_t H = c.hidden_size, I = c.moe_intermediate_size, E = c.n_experts;
  const int64_t Q = c.q_dim(), KV = c.kv_dim(), D = c.head_dim, V = c.vocab_size;
  const bool mixtral = c.arch == Arch::kMixtral;
  auto src = std::make_unique<MemorySource>(size_t(E) * size_t(3 * I * H) * 2);
  std::mt19937_64 rng(spec.seed);
  log(fmt::format("synthetic {}: {} layers, building BF16 non-expert weights", spec.shape,
                  c.n_layers));
  src->add_random("model.embed_tokens.weight", {V, H}, 1.0f, rng);
  src->add_random("lm_head.weight", {V, H}, 1.0f / std::sqrt(float(H)), rng);
  src->add_ones("model.norm.weight", H);
  const std::string moe = mixtral ? "block_sparse_moe." : "mlp.";
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    src->add_ones(p + "input_layernorm.weight", H);
    src->add_ones(p + "post_attention_layernorm.weight", H);
    src->add_random(p + "self_attn.q_proj.weight", {Q, H}, 1.0f / std::sqrt(float(H)), rng);
    src->add_random(p + "self_attn.k_proj.weight", {KV, H}, 1.0f / std::sqrt(float(H)), rng);
    src->add_random(p + "self_attn.v_proj.weight", {KV, H}, 1.0f / std::sqrt(float(H)), rng);
    src->add_random(p + "self_attn.o_proj.weight", {H, Q}, 1.0f / std::sqrt(float(Q)), rng);
    if (c.qk_norm) {
      src->add_ones(p + "self_attn.q_norm.weight", D);
      src->add_ones(p + "self_attn.k_norm.weight", D);
    }
    // Router rows of unit variance; skew makes low-index experts popular.
    const double skew = spec.skew;
    src->add_random(p + moe + "gate.weight", {E, H}, 1.0f, rng,
                    [skew](int64_t e) { return float(std::pow(double(e + 1), -skew)); });
    // Fused expert tensors (transformers-5 names) over the phantom mapping: one tensor each.
    src->add_phantom(p + moe + "experts.gate_up_proj", {E, 2 * I, H});
    src->add_phantom(p + moe + "experts.down_proj", {E, H, I});
  }
  SyntheticModel out;
  out.model = Model::from_source(c, std::move(src));

  const ExpertLayout layout = make_expert_layout(DType::kQ4, H, I, spec.q4_group, false);
  std::vector<ExpertLayout> layouts(size_t(c.n_layers), layout);
  const std::string path = scratch_dir + "/synthetic-experts.bin";
  log(fmt::format("writing {} expert blobs of {} to {}", c.n_layers * E,
                  format_bytes(double(layout.bytes)), path));
  // Values of about 1/sqrt(fan-in): q - 8 has a standard deviation near 4.3, d ~ scale / 8.
  const float scale = 8.0f / 4.3f / std::sqrt(float(std::max(H, I)));
  out.locator = write_blob_file(path, c.n_layers, int(E), layouts, [&](int l, int e, void* dst) {
    fill_random_q4_blob(layout, spec.seed * 1000003ull + uint64_t(l) * 4096 + uint64_t(e), scale,
                        dst);
  });
  return out;
}

}  // namespace cs::cli
