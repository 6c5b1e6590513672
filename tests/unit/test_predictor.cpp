// Predictors and their precision/recall.
#include <doctest/doctest.h>

#include <cmath>

#include "cache/hot_set.h"
#include "cache/prediction_scorer.h"
#include "cache/predictor.h"
#include "common/error.h"

using namespace cs;

namespace {

PredictorParams params(int horizon, double threshold, int top_k = 0) {
  PredictorParams p;
  p.n_layers = 4;
  p.n_experts = 4;
  p.k = 2;
  p.layers = {0, 1, 3};  // layer 2 is dense
  p.horizon = horizon;
  p.threshold = threshold;
  p.top_k = top_k;
  return p;
}

std::vector<int> experts_of(const Prediction& p, int layer) {
  std::vector<int> out;
  for (const auto& e : p.experts)
    if (e.id.layer == layer) out.push_back(e.id.expert);
  return out;
}

}  // namespace

TEST_CASE("gate lookahead: each token's top-k of the next routers, above the threshold") {
  auto pred = make_predictor(PredictorKind::kLookahead, params(2, 0.2));
  CHECK(pred->lookahead() == 2);
  // Two tokens, the routers of layers 1 and 3 (the next MoE layers after 0), E = 4:
  // logits [T][2 * E].
  const float L = std::log(1.0f);
  const std::vector<float> logits = {
      // token 0: layer 1 favours 2 then 0; layer 3 favours 1, then 3 (tiny)
      std::log(0.6f), L + std::log(0.1f), std::log(0.25f), std::log(0.05f),  //
      std::log(0.05f), std::log(0.8f), std::log(0.05f), std::log(0.1f),      //
      // token 1: layer 1 favours 3 then 2; layer 3 is flat
      std::log(0.05f), std::log(0.05f), std::log(0.3f), std::log(0.6f),  //
      std::log(0.25f), std::log(0.25f), std::log(0.25f), std::log(0.25f)};
  pred->on_lookahead(0, 2, 2, logits.data());
  const Prediction p = pred->predict(0);
  CHECK(p.layers == std::vector<int>{1, 3});
  // Layer 1: token 0 -> {0 (0.6), 2 (0.25)}, token 1 -> {3 (0.6), 2 (0.3)}; sorted by score.
  CHECK(experts_of(p, 1) == std::vector<int>{0, 3, 2});
  // Layer 3: token 0 -> {1 (0.8)} (3 is under 0.2), token 1 -> its top-2 by lower index {0, 1}.
  CHECK(experts_of(p, 3) == std::vector<int>{1, 0});
  CHECK(pred->predict(0).experts.empty());  // a prediction is handed out once
  CHECK_THROWS_AS(pred->on_lookahead(3, 1, 1, logits.data()), Error);  // nothing after layer 3
}

TEST_CASE("co-activation: learns which experts follow which, and chains them") {
  auto pred = make_predictor(PredictorKind::kCoactivation, params(2, 0.5));
  auto route = [&](int layer, std::vector<int32_t> ids) {
    std::vector<float> w(ids.size(), 0.5f);
    pred->on_routing({layer, int(ids.size() / 2), 2, ids.data(), w.data()});
  };
  // Nothing learned yet: no prediction.
  route(0, {0, 1});
  CHECK(pred->predict(0).experts.empty());
  // Always: layer 0 {0,1} -> layer 1 {2,3} -> layer 3 {1,2}.
  for (int step = 0; step < 3; ++step) {
    pred->end_step();
    route(0, {0, 1});
    route(1, {2, 3});
    route(3, {1, 2});
  }
  pred->end_step();
  route(0, {0, 1});
  const Prediction p = pred->predict(0);
  CHECK(p.layers == std::vector<int>{1, 3});
  CHECK(experts_of(p, 1) == std::vector<int>{2, 3});
  CHECK(experts_of(p, 3) == std::vector<int>{1, 2});
  for (const auto& e : p.experts) CHECK(e.score == doctest::Approx(1.0));
}

TEST_CASE("prediction scorer: precision and recall per covered layer") {
  PredictionScorer s(4, 4);
  Prediction p;
  p.layers = {1};
  p.experts = {{{1, 0}, 0.9f}, {{1, 2}, 0.5f}, {{1, 3}, 0.3f}};
  s.predicted(p);
  const PredictionCounts c = s.actual(1, {{1, 0}, {1, 1}});
  CHECK(c.predicted == 3);
  CHECK(c.actual == 2);
  CHECK(c.correct == 1);
  CHECK(s.per_layer()[1].precision() == doctest::Approx(1.0 / 3));
  CHECK(s.per_layer()[1].recall() == doctest::Approx(0.5));
  // Layer 0 was not covered by any prediction: not counted.
  CHECK(s.actual(0, {{0, 1}}).actual == 0);
  CHECK(s.total().actual == 2);
}

TEST_CASE("hot-set profiles: parsed with line numbers in errors, written back") {
  const std::string text = "# coldstream hot set v1\n0 3 0.5\n\n1 2  # comment\n0 3\n";
  const auto hot = parse_hot_set(text, "hot.txt", 2, 4);
  REQUIRE(hot.size() == 2);
  CHECK(hot[0].id == ExpertId{0, 3});
  CHECK(hot[0].score == 0.5);
  CHECK(parse_hot_set(format_hot_set(hot), "x", 2, 4).size() == 2);
  auto msg = [](const std::string& t) {
    try {
      parse_hot_set(t, "hot.txt", 2, 4);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(msg("0 1\n0 x\n").find("hot.txt:2:") == 0);
  CHECK(msg("5 1\n").find("hot.txt:1: expert L5.E1 is outside") == 0);
  CHECK(msg("# coldstream hot set v2\n").find("unsupported") != std::string::npos);
}
