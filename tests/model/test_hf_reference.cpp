// The CPU reference forward pass against Hugging Face transformers, on the tiny checkpoints
// made by tools/make_fixtures.py: logits, greedy continuations and expert selections.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <map>

#include "kernels/backend.h"
#include "runtime/engine/session.h"
#include "tests/common/fixtures.h"

using namespace cs;

namespace {

const char* kModels[] = {"qwen3moe", "qwen3moe-dense", "qwen3moe-yarn", "mixtral"};
const char* kPrompts[] = {"a", "b", "c", "d"};

void check_model(const std::string& name) {
  auto model = Model::load(test::fixture(name));
  test::Reference ref(name);
  auto backend = make_cpu_reference_backend();
  const int V = model->config().vocab_size, K = model->config().n_experts_per_tok;
  for (const char* p : kPrompts) {
    CAPTURE(name);
    CAPTURE(p);
    const std::vector<int32_t> prompt = ref.ints(fmt::format("prompt.{}", p));
    const std::vector<float> want = ref.floats(fmt::format("logits.{}", p));
    // Expert selections, recorded per MoE layer as the forward pass runs.
    std::map<int, std::vector<int32_t>> selected;
    Session session(*model, *backend);
    session.transformer().set_routing_observer(
        [&](int layer, int T, const int32_t* ids, const float*) {
          selected[layer].insert(selected[layer].end(), ids, ids + size_t(T) * K);
        });
    const std::vector<float> got = session.eval_all(prompt);
    REQUIRE(got.size() == want.size());
    REQUIRE(want.size() == prompt.size() * size_t(V));
    for (size_t r = 0; r < prompt.size(); ++r) {
      const double err = test::max_rel_error(&got[r * V], &want[r * V], size_t(V));
      CAPTURE(r);
      CHECK(err < 1e-4);
    }
    // Experts: the same set per (layer, position); order within the top-k may differ only
    // between exactly equal probabilities, which random weights do not produce.
    const std::vector<int32_t> want_sel = ref.ints(fmt::format("experts.{}", p));
    const size_t per_layer = prompt.size() * size_t(K);
    REQUIRE(want_sel.size() == selected.size() * per_layer);
    size_t i = 0;
    for (const auto& [layer, ids] : selected) {
      CAPTURE(layer);
      CHECK(std::vector<int32_t>(want_sel.begin() + i * per_layer,
                                 want_sel.begin() + (i + 1) * per_layer) == ids);
      ++i;
    }
    // Greedy continuation, decoded one token at a time through the KV cache.
    const std::vector<int32_t> want_greedy = ref.ints(fmt::format("greedy.{}", p));
    Session fresh(*model, *backend);
    GenerateOptions opt;
    opt.max_tokens = int(want_greedy.size());
    opt.sampling.greedy = true;
    CHECK(fresh.generate(prompt, opt) == want_greedy);
  }
}

}  // namespace

TEST_CASE("reference forward matches transformers: Qwen3-MoE (hub layout)") {
  check_model("qwen3moe");
}
TEST_CASE(
    "reference forward matches transformers: Qwen3-MoE with a dense layer, tied, fused, v5 keys") {
  check_model("qwen3moe-dense");
}
TEST_CASE("reference forward matches transformers: Qwen3-MoE with YaRN") {
  check_model("qwen3moe-yarn");
}
TEST_CASE("reference forward matches transformers: Mixtral (sharded)") {
  check_model("mixtral");
}

TEST_CASE("YaRN inverse frequencies and attention factor equal transformers'") {
  auto model = Model::load(test::fixture("qwen3moe-yarn"));
  test::Reference ref("qwen3moe-yarn");
  float factor = 0;
  const std::vector<float> inv = rope_inv_freq(model->config(), &factor);
  const std::vector<float> want = ref.floats("rope.inv_freq");
  REQUIRE(inv.size() == want.size());
  CHECK(test::max_rel_error(inv.data(), want.data(), inv.size()) < 1e-6);
  CHECK(factor == doctest::Approx(ref.floats("rope.attention_scaling")[0]).epsilon(1e-6));
}

TEST_CASE("KV cache: prefill in chunks and token-by-token decode give the prefill logits") {
  auto model = Model::load(test::fixture("qwen3moe"));
  test::Reference ref("qwen3moe");
  auto backend = make_cpu_reference_backend();
  const std::vector<int32_t> prompt = ref.ints("prompt.d");
  const std::vector<float> want = ref.floats("logits.d");
  const size_t V = size_t(model->config().vocab_size);
  SessionOptions small_chunks;
  small_chunks.transformer.max_batch = 7;  // forces several prefill chunks
  Session chunked(*model, *backend, small_chunks);
  const std::vector<float> got = chunked.eval_all(prompt);
  CHECK(test::max_rel_error(got.data(), want.data(), want.size()) < 1e-4);
  Session stepwise(*model, *backend);
  for (size_t i = 0; i < prompt.size(); ++i) {
    const int32_t one[1] = {prompt[i]};
    auto logits = stepwise.eval(one);
    REQUIRE(test::max_rel_error(logits.data(), &want[i * V], V) < 1e-4);
  }
}
