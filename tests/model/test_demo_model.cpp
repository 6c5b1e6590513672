// The shipped default model (models/coldstream-demo.cst, made by tools/demo/): it loads with its
// tokenizer, the held-out perplexity of the packed INT4 file stays within 5% of what PyTorch
// measured for the BF16 model at training time, and it answers a chat prompt.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "common/error.h"
#include "kernels/backend.h"
#include "runtime/eval/perplexity.h"
#include "runtime/model/model.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/common/fixtures.h"

using namespace cs;

namespace {

// docs/demo/metrics.json, eval.heldout_small: PyTorch (transformers 5.17), BF16 weights and
// compute, windows of 512 tokens, 35,616 predicted tokens.
constexpr double kPyTorchBf16Perplexity = 17.314;
constexpr int64_t kPyTorchPredictedTokens = 35616;

std::string demo_model() {
  return test::fixture_dir() + "/../../models/coldstream-demo.cst";
}

}  // namespace

TEST_CASE("default model: loads with its SentencePiece tokenizer and description") {
  auto model = Model::load(demo_model());
  REQUIRE(model->tokenizer() != nullptr);
  CHECK(model->tokenizer()->kind() == "sentencepiece");
  CHECK(model->tokenizer()->token_id("<|im_end|>").has_value());
  CHECK(model->description().find("demo model") != std::string::npos);
  CHECK(model->config().n_experts >= 32);
  CHECK(model->config().n_experts_per_tok >= 4);
  CHECK(model->config().n_layers >= 8);
  CHECK(model->experts().host_view(0, 0).gate.dtype == DType::kQ4);
}

TEST_CASE("load_model_tokenizer: the tokenizer of a packed file or a directory, no weights") {
  // tokenize, bench-tokenizer and template take --model F.cst too (they read directories only).
  auto model = Model::load(demo_model());
  std::string type;
  const std::unique_ptr<Tokenizer> tok = load_model_tokenizer(demo_model(), &type);
  REQUIRE(tok != nullptr);
  CHECK(type == model->config().model_type);
  const std::string text = "<|im_start|>user\nHello, world: 3.14 naïve ü<|im_end|>";
  CHECK(tok->encode(text) == model->tokenizer()->encode(text));
  CHECK(tok->info().chat_template == model->tokenizer()->info().chat_template);
  CHECK(tok->info().eos_token == model->tokenizer()->info().eos_token);
  // A directory: its tokenizer.json, and config.json's model type.
  auto dir = Model::load(test::fixture("qwen3moe"));
  const std::unique_ptr<Tokenizer> dtok = load_model_tokenizer(test::fixture("qwen3moe"), &type);
  CHECK(type == dir->config().model_type);
  CHECK((dtok != nullptr) == (dir->tokenizer() != nullptr));
  if (dtok) CHECK(dtok->encode(text) == dir->tokenizer()->encode(text));
  CHECK_THROWS_WITH_AS(load_model_tokenizer(test::fixture("demo/heldout_small.txt")),
                       doctest::Contains("expected a Hugging Face model directory or a packed"),
                       Error);
}

TEST_CASE("default model: held-out perplexity of the INT4 file is within 5% of PyTorch BF16") {
  auto model = Model::load(demo_model());
  std::ifstream in(test::fixture("demo/heldout_small.txt"));
  std::stringstream text;
  text << in.rdbuf();
  const std::vector<int32_t> ids = model->tokenizer()->encode(text.str());
  auto backend = make_cpu_backend();
  SessionOptions o;
  o.transformer.n_ctx = 512;
  Session session(*model, *backend, o);
  PerplexityOptions p;
  p.ctx = 512;
  const PerplexityResult r = evaluate_perplexity(session, ids, p);
  MESSAGE(fmt::format("coldstream INT4 perplexity {:.4f} vs PyTorch BF16 {:.4f} ({:+.2f}%)",
                      r.perplexity(), kPyTorchBf16Perplexity,
                      100 * (r.perplexity() / kPyTorchBf16Perplexity - 1)));
  // Same text, same tokenization, same windows as train.py.
  CHECK(r.predicted == kPyTorchPredictedTokens);
  CHECK(std::fabs(r.perplexity() / kPyTorchBf16Perplexity - 1) < 0.05);
}
