#include "runtime/format/gguf_export.h"

#include <fmt/format.h>

#include <vector>

#include "common/error.h"
#include "runtime/format/gguf.h"
#include "runtime/format/gguf_quants.h"

namespace cs {

std::string gguf_tensor_name(const WeightId& id) {
  const std::string b = fmt::format("blk.{}.", id.layer);
  switch (id.role) {
    case WeightRole::kEmbed:
      return "token_embd.weight";
    case WeightRole::kFinalNorm:
      return "output_norm.weight";
    case WeightRole::kLmHead:
      return "output.weight";
    case WeightRole::kAttnNorm:
      return b + "attn_norm.weight";
    case WeightRole::kFfnNorm:
      return b + "ffn_norm.weight";
    case WeightRole::kQ:
      return b + "attn_q.weight";
    case WeightRole::kK:
      return b + "attn_k.weight";
    case WeightRole::kV:
      return b + "attn_v.weight";
    case WeightRole::kO:
      return b + "attn_output.weight";
    case WeightRole::kQNorm:
      return b + "attn_q_norm.weight";
    case WeightRole::kKNorm:
      return b + "attn_k_norm.weight";
    case WeightRole::kRouter:
      return b + "ffn_gate_inp.weight";
    case WeightRole::kDenseGate:
      return b + "ffn_gate.weight";
    case WeightRole::kDenseUp:
      return b + "ffn_up.weight";
    case WeightRole::kDenseDown:
      return b + "ffn_down.weight";
    case WeightRole::kExpertGate:
      return b + "ffn_gate_exps.weight";
    case WeightRole::kExpertUp:
      return b + "ffn_up_exps.weight";
    case WeightRole::kExpertDown:
      return b + "ffn_down_exps.weight";
  }
  return "?";
}

int64_t gguf_qk_row(const ModelConfig& c, WeightRole role, int64_t r) {
  if (c.arch != Arch::kMixtral || (role != WeightRole::kQ && role != WeightRole::kK)) return r;
  const int64_t D = c.head_dim, half = D / 2, h = r / D, j = (r % D) / half, i = r % half;
  return h * D + 2 * i + j;
}

void write_gguf_metadata(GgufWriter& g, const ModelConfig& c, const std::string& name,
                         const SynthVocab& v) {
  const bool qwen = c.arch == Arch::kQwen3Moe;
  const std::string a = qwen ? "qwen3moe" : "llama";
  g.set_str("general.architecture", a);
  g.set_str("general.name", name);
  g.set_u32("general.quantization_version", 2);
  g.set_u32(a + ".block_count", uint32_t(c.n_layers));
  g.set_u32(a + ".context_length", uint32_t(c.max_position_embeddings));
  g.set_u32(a + ".embedding_length", uint32_t(c.hidden_size));
  g.set_u32(a + ".feed_forward_length",
            uint32_t(qwen ? c.intermediate_size : c.moe_intermediate_size));
  g.set_u32(a + ".attention.head_count", uint32_t(c.n_heads));
  g.set_u32(a + ".attention.head_count_kv", uint32_t(c.n_kv_heads));
  g.set_f32(a + ".rope.freq_base", float(c.rope_theta));
  g.set_f32(a + ".attention.layer_norm_rms_epsilon", c.rms_norm_eps);
  g.set_u32(a + ".expert_count", uint32_t(c.n_experts));
  g.set_u32(a + ".expert_used_count", uint32_t(c.n_experts_per_tok));
  if (qwen) {
    g.set_u32(a + ".attention.key_length", uint32_t(c.head_dim));
    g.set_u32(a + ".attention.value_length", uint32_t(c.head_dim));
    g.set_u32(a + ".expert_feed_forward_length", uint32_t(c.moe_intermediate_size));
    g.set_bool(a + ".expert_weights_norm", c.norm_topk_prob);
  } else {
    g.set_u32(a + ".rope.dimension_count", uint32_t(c.head_dim));
    g.set_u32(a + ".vocab_size", uint32_t(c.vocab_size));
  }
  g.set_str("tokenizer.ggml.model", v.model);
  if (qwen) g.set_str("tokenizer.ggml.pre", "qwen2");
  g.set_strs("tokenizer.ggml.tokens", v.tokens);
  g.set_i32s("tokenizer.ggml.token_type", v.types);
  if (v.model == "gpt2") {
    g.set_strs("tokenizer.ggml.merges", v.merges);
    g.set_u32("tokenizer.ggml.padding_token_id", uint32_t(v.eos));
    g.set_bool("tokenizer.ggml.add_bos_token", false);
  } else {
    g.set_f32s("tokenizer.ggml.scores", v.scores);
    g.set_u32("tokenizer.ggml.bos_token_id", uint32_t(v.bos));
    g.set_u32("tokenizer.ggml.unknown_token_id", 0);
    g.set_bool("tokenizer.ggml.add_bos_token", true);
  }
  g.set_u32("tokenizer.ggml.eos_token_id", uint32_t(v.eos));
}

void export_gguf(const Checkpoint& in, const std::string& path, const GgufExportTypes& types,
                 bool force, PwriteFn pwrite) {
  const ModelConfig& c = in.config();
  OutputFile out(path, force, std::move(pwrite));
  GgufWriter g(out);
  SynthVocab vocab = synth_vocab(c);
  write_gguf_metadata(g, c, "coldstream export of " + in.origin(), vocab);
  auto type_for = [&](WeightRole role, int64_t cols) {
    uint32_t t = kGgmlF32;
    switch (weight_class(role)) {
      case WeightClass::kExperts:
        t = types.experts;
        break;
      case WeightClass::kAttention:
        t = types.attention;
        break;
      case WeightClass::kEmbeddings:
        t = types.embeddings;
        break;
      case WeightClass::kLmHead:
        t = types.lm_head;
        break;
      case WeightClass::kDense:
        t = types.dense;
        break;
      default:
        break;
    }
    if (!ggml_type_supported(t))
      fail(ErrorKind::kInvalidArgument, "GGML type {} cannot be written", ggml_type_name(t));
    return cols % ggml_block_weights(t) == 0 ? t : uint32_t(kGgmlF32);
  };
  struct Item {
    WeightId id;
    size_t index;
    uint32_t type;
  };
  std::vector<Item> items;
  for (const WeightId& id : non_expert_weights(c)) {
    const WeightShape s = weight_shape(c, id);
    const uint32_t t = type_for(id.role, s.cols);
    std::vector<int64_t> dims =
        s.rows == 1 ? std::vector<int64_t>{s.cols} : std::vector{s.cols, s.rows};
    items.push_back({id, g.add_tensor(gguf_tensor_name(id), t, dims), t});
  }
  const int64_t E = c.n_experts;
  for (int l : moe_layers(c))
    for (WeightRole r : {WeightRole::kExpertGate, WeightRole::kExpertUp, WeightRole::kExpertDown}) {
      const WeightShape s = weight_shape(c, {r, l, 0});
      const uint32_t t = type_for(r, s.cols);
      items.push_back(
          {{r, l, -1}, g.add_tensor(gguf_tensor_name({r, l}), t, {s.cols, s.rows, E}), t});
    }
  g.layout();
  std::vector<float> row;
  std::vector<uint8_t> enc;
  for (const Item& it : items) {
    const int first =
        it.id.expert < 0 && weight_class(it.id.role) == WeightClass::kExperts ? 0 : -1;
    const int n_mats = first == 0 ? int(E) : 1;
    for (int e = 0; e < n_mats; ++e) {
      WeightId id = it.id;
      if (first == 0) id.expert = e;
      auto src = in.open(id);
      const uint64_t rb = gguf_row_bytes(it.type, src->cols());
      row.resize(size_t(src->cols()));
      enc.resize(rb);
      for (int64_t r = 0; r < src->rows(); ++r) {
        src->row_f32(r, row.data());
        gguf_quantize_row(it.type, row.data(), src->cols(), enc.data());
        const int64_t dst = int64_t(e) * src->rows() + gguf_qk_row(c, id.role, r);
        g.write(it.index, uint64_t(dst) * rb, enc.data(), rb);
      }
    }
  }
  g.finish();
}

}  // namespace cs
