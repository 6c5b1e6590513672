// Writes the seed corpus of the fuzz targets (small valid files of each format):
//   fuzz_make_seeds tests/fuzz/corpus
#include <fmt/format.h>

#include <filesystem>
#include <random>

#include "runtime/format/gguf.h"
#include "runtime/format/gguf_export.h"
#include "runtime/format/gguf_quants.h"
#include "runtime/format/packed_writer.h"
#include "runtime/model/weight_id.h"
#include "tests/common/safetensors_writer.h"

using namespace cs;

namespace {

ModelConfig micro_config() {
  ModelConfig c;
  c.model_type = "qwen3_moe";
  c.vocab_size = 8;
  c.hidden_size = 32;
  c.n_layers = 1;
  c.n_heads = c.n_kv_heads = 1;
  c.head_dim = 32;
  c.n_experts = 2;
  c.n_experts_per_tok = 1;
  c.moe_intermediate_size = 32;
  c.intermediate_size = 64;
  c.max_position_embeddings = 64;
  return c;
}

void packed_seed(const std::string& path, TensorFormat experts, TensorFormat matrices) {
  const ModelConfig c = micro_config();
  std::vector<PackedTensorEntry> entries;
  for (const WeightId& id : non_expert_weights(c)) {
    const WeightShape s = weight_shape(c, id);
    const WeightClass k = weight_class(id.role);
    const TensorFormat f = k == WeightClass::kNorm     ? TensorFormat{DType::kF32}
                           : k == WeightClass::kRouter ? TensorFormat{DType::kBF16}
                                                       : matrices;
    entries.push_back({canonical_name(id), f, s.rows, s.cols});
  }
  OutputFile out(path, true);
  PackedHeaderInfo info;
  info.config = c;
  info.tokenizer = TokenizerBlob{"gguf-vocab", "{\"tokenizer.ggml.model\":\"gpt2\"}"};
  info.chat = {{"chat_template", "{{ messages }}"}};
  PackedWriter w(out, info, entries, experts);
  std::mt19937 rng(1);
  for (size_t i = 0; i < w.tensors().size(); ++i) {
    const PackedTensorEntry& t = w.tensors()[i];
    std::vector<uint8_t> d(t.data_bytes());
    for (uint8_t& b : d) b = uint8_t(rng() & 0x3f);  // small values, finite as floats
    std::vector<uint16_t> s(t.scale_bytes() / 2, 0x3c00);
    w.write_rows(i, 0, t.rows, d.data(), s.data(), s.data());
  }
  std::vector<uint8_t> blob(w.expert_layout().bytes, 0x11);
  for (int e = 0; e < c.n_experts; ++e) w.write_expert(0, e, blob.data());
  w.finish();
}

void gguf_seed(const std::string& path) {
  OutputFile out(path, true);
  GgufWriter g(out);
  ModelConfig c = micro_config();
  SynthVocab v;
  v.model = "gpt2";
  v.tokens = {"a", "b", "ab"};
  v.types = {1, 1, 1};
  v.merges = {"a b"};
  v.eos = 2;
  write_gguf_metadata(g, c, "fuzz seed", v);
  const uint32_t types[] = {kGgmlF32,  kGgmlF16,  kGgmlBF16, kGgmlQ4_0,
                            kGgmlQ4_1, kGgmlQ8_0, kGgmlQ4_K, kGgmlQ6_K};
  std::vector<size_t> idx;
  for (uint32_t t : types)
    idx.push_back(g.add_tensor(fmt::format("t.{}", ggml_type_name(t)), t, {256, 1}));
  g.layout();
  std::vector<float> x(256);
  for (int i = 0; i < 256; ++i) x[size_t(i)] = std::sin(float(i));
  for (size_t i = 0; i < idx.size(); ++i) {
    std::vector<uint8_t> q(gguf_row_bytes(types[i], 256));
    gguf_quantize_row(types[i], x.data(), 256, q.data());
    g.write(idx[i], 0, q.data(), q.size());
  }
  g.finish();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "tests/fuzz/corpus";
  for (const char* sub : {"safetensors", "gguf", "packed"})
    std::filesystem::create_directories(dir + "/" + sub);
  test::write_safetensors(dir + "/safetensors/two.safetensors",
                          {{"a", test::raw<float>("F32", {2, 2}, {1, 2, 3, 4})},
                           {"b", test::raw<uint16_t>("BF16", {3}, {0x3f80, 0, 0x4000})},
                           {"__metadata__x", test::raw<int32_t>("I32", {1}, {7})}});
  packed_seed(dir + "/packed/sym.cst", {DType::kQ4, 32, false}, {DType::kQ8, 32, false});
  packed_seed(dir + "/packed/asym.cst", {DType::kQ4, 32, true}, {DType::kQ4, 32, true});
  gguf_seed(dir + "/gguf/types.gguf");
  return 0;
}
