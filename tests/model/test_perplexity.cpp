// Perplexity and routing statistics on the transformers fixture, against its reference outputs.
#include <doctest/doctest.h>

#include <cmath>
#include <map>

#include "common/error.h"
#include "kernels/backend.h"
#include "runtime/eval/perplexity.h"
#include "runtime/eval/routing_stats.h"
#include "tests/common/fixtures.h"

using namespace cs;

namespace {

// Sum of -log p(prompt[i+1]) over rows [0, rows) of the reference logits of `prompt`.
double reference_nll(const test::Reference& ref, const char* p, int rows) {
  const std::vector<int32_t> ids = ref.ints(fmt::format("prompt.{}", p));
  const std::vector<float> logits = ref.floats(fmt::format("logits.{}", p));
  const size_t V = logits.size() / ids.size();
  double nll = 0;
  for (int i = 0; i < rows; ++i)
    nll += token_nll(std::span<const float>(&logits[size_t(i) * V], V), ids[size_t(i) + 1]);
  return nll;
}

Session make_session(const Model& m, Backend& b, int ctx) {
  SessionOptions o;
  o.transformer.n_ctx = ctx;
  return Session(m, b, o);
}

}  // namespace

TEST_CASE("perplexity equals the one computed from transformers' logits") {
  auto model = Model::load(test::fixture("qwen3moe"));
  test::Reference ref("qwen3moe");
  auto backend = make_cpu_reference_backend();

  SUBCASE("one window") {
    const std::vector<int32_t> d = ref.ints("prompt.d");  // 40 tokens
    Session s = make_session(*model, *backend, 40);
    PerplexityOptions opt;
    opt.ctx = 40;
    opt.chunk = 7;  // several forward calls per window
    const PerplexityResult r = evaluate_perplexity(s, d, opt);
    CHECK(r.windows == 1);
    CHECK(r.predicted == 39);
    CHECK(r.nll_sum == doctest::Approx(reference_nll(ref, "d", 39)).epsilon(1e-4));
  }
  SUBCASE("windows start from an empty context") {
    // c (17 tokens) twice and its first 5 tokens: windows of 17 are c, c and c[0:5].
    const std::vector<int32_t> c = ref.ints("prompt.c");
    std::vector<int32_t> stream = c;
    stream.insert(stream.end(), c.begin(), c.end());
    stream.insert(stream.end(), c.begin(), c.begin() + 5);
    Session s = make_session(*model, *backend, 17);
    PerplexityOptions opt;
    opt.ctx = 17;
    int windows_seen = 0;
    PerplexityHooks hooks;
    hooks.on_window = [&](int, const PerplexityWindow&) { ++windows_seen; };
    const PerplexityResult r = evaluate_perplexity(s, stream, opt, hooks);
    CHECK(r.windows == 3);
    CHECK(windows_seen == 3);
    CHECK(r.predicted == 16 + 16 + 4);
    const double want = 2 * reference_nll(ref, "c", 16) + reference_nll(ref, "c", 4);
    CHECK(r.nll_sum == doctest::Approx(want).epsilon(1e-4));
    CHECK(r.perplexity() == doctest::Approx(std::exp(want / 36)).epsilon(1e-4));
  }
  SUBCASE("a stride scores every token once") {
    const std::vector<int32_t> d = ref.ints("prompt.d");
    Session s = make_session(*model, *backend, 20);
    PerplexityOptions opt;
    opt.ctx = 20;
    opt.stride = 10;
    const PerplexityResult r = evaluate_perplexity(s, d, opt);
    CHECK(r.windows == 3);
    CHECK(r.predicted == 39);
  }
  SUBCASE("stopping early keeps what was scored") {
    const std::vector<int32_t> d = ref.ints("prompt.d");
    Session s = make_session(*model, *backend, 8);
    PerplexityOptions opt;
    opt.ctx = 8;
    PerplexityHooks hooks;
    hooks.on_progress = [](const PerplexityResult& r, int64_t) { return r.predicted < 7; };
    const PerplexityResult r = evaluate_perplexity(s, d, opt, hooks);
    CHECK(r.predicted == 7);
    CHECK(r.windows == 1);
  }
}

TEST_CASE("perplexity: bad input names what is wrong") {
  auto model = Model::load(test::fixture("qwen3moe"));
  auto backend = make_cpu_reference_backend();
  Session s = make_session(*model, *backend, 16);
  PerplexityOptions opt;
  opt.ctx = 32;
  const std::vector<int32_t> ids = {1, 2, 3, 4};
  CHECK_THROWS_WITH_AS(evaluate_perplexity(s, ids, opt), doctest::Contains("context holds 16"),
                       Error);
  opt.ctx = 4;
  const std::vector<int32_t> bad = {1, 2, 512, 4};
  CHECK_THROWS_WITH_AS(evaluate_perplexity(s, bad, opt), doctest::Contains("position 2"), Error);
}

TEST_CASE("routing stats from the forward pass equal those of transformers' expert choices") {
  auto model = Model::load(test::fixture("qwen3moe"));
  test::Reference ref("qwen3moe");
  auto backend = make_cpu_reference_backend();
  const ModelConfig& c = model->config();
  const std::vector<int32_t> d = ref.ints("prompt.d");
  RoutingStats ours(c.n_layers, c.n_experts, c.n_experts_per_tok);
  Session s = make_session(*model, *backend, 40);
  s.transformer().set_routing_observer(ours.observer());
  PerplexityOptions opt;
  opt.ctx = 40;
  PerplexityHooks hooks;
  hooks.on_window = [&](int, const PerplexityWindow&) { ours.begin_request(); };
  evaluate_perplexity(s, d, opt, hooks);

  // experts.d: [L_moe][n][K], every layer of this fixture is MoE.
  const std::vector<int32_t> sel = ref.ints("experts.d");
  const size_t per_layer = d.size() * size_t(c.n_experts_per_tok);
  REQUIRE(sel.size() == per_layer * size_t(c.n_layers));
  RoutingStats theirs(c.n_layers, c.n_experts, c.n_experts_per_tok);
  theirs.begin_request();
  for (int l = 0; l < c.n_layers; ++l)
    theirs.observe(l, int(d.size()), sel.data() + size_t(l) * per_layer);

  const auto a = to_json(ours.report()), b = to_json(theirs.report());
  CHECK(a == b);
  CHECK(a["layers"].size() == size_t(c.n_layers));
  CHECK(a["tokens"] == 40);
  // Real routing on 8 experts over 40 tokens uses every expert somewhere.
  CHECK(a["mean_working_set"].get<double>() > 4.0);
}
