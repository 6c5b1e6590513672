// synth's shapes (FACTS.md) and tokenizer vocabularies.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <algorithm>

#include "common/error.h"
#include "runtime/format/synth.h"

namespace cs {
namespace {

struct Shape {
  const char* name;
  Arch arch;
  int vocab, hidden, layers, heads, kv_heads, head_dim, experts, top_k, inter, dense_inter;
  float eps;
  double theta;
  int context;
};

constexpr Shape kShapes[] = {
    {"qwen3-235b-a22b", Arch::kQwen3Moe, 151936, 4096, 94, 64, 4, 128, 128, 8, 1536, 12288, 1e-6f,
     1e6, 40960},
    {"qwen3-30b-a3b", Arch::kQwen3Moe, 151936, 2048, 48, 32, 4, 128, 128, 8, 768, 6144, 1e-6f, 1e6,
     40960},
    {"mixtral-8x7b", Arch::kMixtral, 32000, 4096, 32, 32, 8, 128, 8, 2, 14336, 14336, 1e-5f, 1e6,
     32768},
    // Small shapes with the same structure, for tests.
    {"tiny-qwen3", Arch::kQwen3Moe, 1024, 256, 2, 4, 2, 64, 16, 4, 256, 512, 1e-6f, 1e6, 4096},
    {"tiny-mixtral", Arch::kMixtral, 512, 256, 2, 4, 2, 64, 8, 2, 256, 256, 1e-5f, 1e6, 4096},
};

// GPT-2's byte-to-unicode map: printable bytes stand for themselves, the others map to
// U+0100 upwards (so byte 10 is "Ċ" and a space is "Ġ").
std::vector<std::string> gpt2_byte_tokens() {
  std::vector<int> cp(256, -1);
  for (int b = 0; b < 256; ++b)
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) cp[b] = b;
  int next = 256;
  for (int b = 0; b < 256; ++b)
    if (cp[b] < 0) cp[b] = next++;
  std::vector<std::string> out;
  for (int b = 0; b < 256; ++b) {
    std::string s;
    const int c = cp[b];
    if (c < 0x80) {
      s += char(c);
    } else {
      s += char(0xC0 | (c >> 6));
      s += char(0x80 | (c & 0x3F));
    }
    out.push_back(s);
  }
  return out;
}

}  // namespace

std::vector<std::string> synth_shape_names() {
  std::vector<std::string> out;
  for (const Shape& s : kShapes) out.push_back(s.name);
  return out;
}

ModelConfig synth_shape(const std::string& name, int layers) {
  for (const Shape& s : kShapes) {
    if (name != s.name) continue;
    if (layers < 0 || layers > s.layers)
      fail(ErrorKind::kInvalidArgument, "--layers: {} is outside 1..{} for shape {}", layers,
           s.layers, name);
    ModelConfig c;
    c.arch = s.arch;
    c.model_type = s.arch == Arch::kMixtral ? "mixtral" : "qwen3_moe";
    c.vocab_size = s.vocab;
    c.hidden_size = s.hidden;
    c.n_layers = layers > 0 ? layers : s.layers;
    c.n_heads = s.heads;
    c.n_kv_heads = s.kv_heads;
    c.head_dim = s.head_dim;
    c.n_experts = s.experts;
    c.n_experts_per_tok = s.top_k;
    c.moe_intermediate_size = s.inter;
    c.intermediate_size = s.dense_inter;
    c.norm_topk_prob = true;
    c.qk_norm = s.arch == Arch::kQwen3Moe;
    c.rms_norm_eps = s.eps;
    c.rope_theta = s.theta;
    c.max_position_embeddings = s.context;
    c.torch_dtype = "bfloat16";
    const SynthVocab v = synth_vocab(c);
    c.bos_token_id = s.arch == Arch::kMixtral ? v.bos : -1;
    c.eos_token_ids = {v.eos};
    c.validate(name);
    return c;
  }
  fail(ErrorKind::kInvalidArgument, "--shape: unknown shape '{}' (expected one of: {})", name,
       fmt::join(synth_shape_names(), ", "));
}

SynthVocab synth_vocab(const ModelConfig& c) {
  SynthVocab v;
  const int V = c.vocab_size;
  if (c.arch == Arch::kQwen3Moe) {
    v.model = "gpt2";
    v.tokens = gpt2_byte_tokens();
    v.types.assign(256, 1);
    // Merges of lowercase letter pairs, with and without a leading space ("Ġ").
    const std::string space = v.tokens[' '];
    for (char a = 'a'; a <= 'z' && int(v.tokens.size()) < V / 2; ++a) {
      v.merges.push_back(fmt::format("{} {}", space, a));
      v.tokens.push_back(space + a);
      for (char b = 'a'; b <= 'z'; ++b) {
        v.merges.push_back(fmt::format("{} {}", a, b));
        v.tokens.push_back(std::string{a, b});
      }
    }
    v.types.resize(v.tokens.size(), 1);
    // Qwen's control tokens at their real ids (or at the end of a small vocabulary).
    const char* specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    const int first = std::min(151643, V - 3);
    while (int(v.tokens.size()) < V) {
      const int id = int(v.tokens.size());
      if (id >= first && id < first + 3) {
        v.tokens.push_back(specials[id - first]);
        v.types.push_back(3);
      } else {
        v.tokens.push_back(fmt::format("[PAD{}]", id));
        v.types.push_back(5);
      }
    }
    v.eos = first + 2;  // <|im_end|>
    return v;
  }
  v.model = "llama";
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(fmt::format("<0x{:02X}>", b));
    v.types.push_back(6);
  }
  for (int i = int(v.tokens.size()); i < V; ++i) {
    v.tokens.push_back(fmt::format("\xe2\x96\x81t{}", i));  // "▁t<i>"
    v.types.push_back(1);
  }
  v.scores.resize(size_t(V));
  for (int i = 0; i < V; ++i) v.scores[size_t(i)] = i < 259 ? 0.0f : -float(i);
  v.bos = 1;
  v.eos = 2;
  return v;
}

TokenizerBlob synth_vocab_blob(const SynthVocab& v) {
  nlohmann::json j = {{"tokenizer.ggml.model", v.model},
                      {"tokenizer.ggml.tokens", v.tokens},
                      {"tokenizer.ggml.token_type", v.types},
                      {"tokenizer.ggml.eos_token_id", v.eos}};
  if (v.model == "gpt2") {
    j["tokenizer.ggml.pre"] = "qwen2";
    j["tokenizer.ggml.merges"] = v.merges;
    j["tokenizer.ggml.add_bos_token"] = false;
  } else {
    j["tokenizer.ggml.scores"] = v.scores;
    j["tokenizer.ggml.bos_token_id"] = v.bos;
    j["tokenizer.ggml.unknown_token_id"] = 0;
    j["tokenizer.ggml.add_bos_token"] = true;
  }
  return {"gguf-vocab", j.dump()};
}

}  // namespace cs
