#include "runtime/eval/model_shape.h"

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "kernels/expert_layout.h"
#include "offload/blob_pack.h"
#include "runtime/format/synth.h"
#include "runtime/model/model.h"
#include "runtime/model/weight_id.h"

namespace cs {

ModelShape model_shape_from_config(const ModelConfig& c, const std::string& name) {
  ModelShape s;
  s.name = name;
  s.n_layers = c.n_layers;
  s.n_experts = c.n_experts;
  s.k = c.n_experts_per_tok;
  s.hidden = c.hidden_size;
  s.n_moe_layers = int(moe_layers(c).size());
  const int64_t H = c.hidden_size, I = c.moe_intermediate_size;
  s.expert_bytes = make_expert_layout(DType::kQ4, H, I, 32, false).bytes;
  // Q8 group 32: 34 bytes per 32 weights; norms and routers in fp32.
  const double q8 = 34.0 / 32.0;
  const double attn = double(H) * (c.q_dim() + 2.0 * c.kv_dim()) + double(c.q_dim()) * double(H);
  const double embed = double(c.vocab_size) * double(H) * (c.tie_word_embeddings ? 1 : 2);
  double dense_mlp = 0;
  for (int l = 0; l < c.n_layers; ++l)
    if (!c.is_moe_layer(l)) dense_mlp += 3.0 * double(H) * double(c.intermediate_size);
  const double routers = double(s.n_moe_layers) * double(c.n_experts) * double(H) * 4;
  const double norms = double(c.n_layers) * (2.0 * double(H) + 2.0 * c.head_dim) * 4;
  s.dense_bytes = uint64_t(q8 * (double(c.n_layers) * attn + embed + dense_mlp) + routers + norms);
  s.embed_bytes = c.tie_word_embeddings ? 0 : uint64_t(q8 * double(c.vocab_size) * double(H));
  s.kv_bytes_per_token = uint64_t(c.n_layers) * 2 * uint64_t(c.kv_dim()) * 2;
  s.active_params = double(c.n_layers) * attn + dense_mlp + double(H) * double(c.vocab_size) +
                    double(s.n_moe_layers) * double(s.k) * 3.0 * double(H) * double(I);
  return s;
}

ModelShape load_model_shape(const std::string& what) {
  const auto names = synth_shape_names();
  if (std::find(names.begin(), names.end(), what) != names.end())
    return model_shape_from_config(synth_shape(what, 0), what);
  std::error_code ec;
  if (!std::filesystem::exists(what, ec))
    fail(ErrorKind::kNotFound,
         "--model {}: no such file or directory, and not a synth shape (known shapes: {})", what,
         fmt::join(names, ", "));
  auto m = Model::load(what);
  ModelShape s = model_shape_from_config(m->config(), what);
  for (int l = 0; l < m->config().n_layers; ++l)
    if (m->config().is_moe_layer(l)) {
      s.expert_bytes = layout_of(m->experts().host_view(l, 0)).bytes;
      break;
    }
  return s;
}

}  // namespace cs
