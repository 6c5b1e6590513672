// Routing statistics on hand-made routing sequences whose answers are worked out by hand.
#include <doctest/doctest.h>

#include <cmath>

#include "common/error.h"
#include "runtime/eval/perplexity.h"
#include "runtime/eval/routing_stats.h"

using namespace cs;

TEST_CASE("routing stats: load, entropy, reuse distance, LRU and working set by hand") {
  RoutingStats s(1, 4, 1);
  s.set_lru_capacities({1, 2, 3});
  s.begin_request();
  const int32_t ids[] = {0, 1, 0, 0, 2};
  s.observe(0, 5, ids);
  const RoutingStats::Report r = s.report();
  REQUIRE(r.layers.size() == 1);
  const RoutingStats::Layer& l = r.layers[0];
  CHECK(r.requests == 1);
  CHECK(r.tokens == 5);
  CHECK(l.load == std::vector<int64_t>{3, 1, 1, 0});
  const double h = -(0.6 * std::log2(0.6) + 2 * 0.2 * std::log2(0.2));
  CHECK(l.entropy_bits == doctest::Approx(h));
  CHECK(l.max_load_x_uniform == doctest::Approx(2.4));
  CHECK(l.min_load_x_uniform == 0.0);
  CHECK(l.experts_unused == 1);
  // 0 cold, 1 cold, 0 after 2 tokens, 0 after 1 token, 2 cold.
  CHECK(l.cold == 3);
  CHECK(l.reuse_histogram[0] == 1);
  CHECK(l.reuse_histogram[1] == 1);
  CHECK(l.mean_reuse_distance == doctest::Approx(1.5));
  // LRU stack before each token: [], [0], [1 0], [0 1], [0 1] -> ranks: miss, miss, 1, 0, miss.
  CHECK(l.lru_capacities == std::vector<int>{1, 2, 3});
  CHECK(l.lru_hit_rate[0] == doctest::Approx(0.2));
  CHECK(l.lru_hit_rate[1] == doctest::Approx(0.4));
  CHECK(l.lru_hit_rate[2] == doctest::Approx(0.4));
  CHECK(l.mean_working_set == doctest::Approx(3.0));
  CHECK(r.growth_tokens == std::vector<int>{1, 2, 4});
  CHECK(r.growth_experts == std::vector<double>{1.0, 2.0, 2.0});
}

TEST_CASE("routing stats: reuse restarts per request, the LRU cache does not") {
  RoutingStats s(2, 4, 1);
  s.set_lru_capacities({1});
  const int32_t zero[] = {0};
  s.begin_request();
  s.observe(1, 1, zero);  // layer 0 is dense: never observed
  s.begin_request();
  s.observe(1, 1, zero);
  const RoutingStats::Report r = s.report();
  REQUIRE(r.layers.size() == 1);
  CHECK(r.layers[0].layer == 1);
  CHECK(r.requests == 2);
  CHECK(r.layers[0].cold == 2);                                // first use in each request
  CHECK(r.layers[0].lru_hit_rate[0] == doctest::Approx(0.5));  // the second one hits
  CHECK(r.layers[0].mean_working_set == doctest::Approx(1.0));
}

TEST_CASE("routing stats: a token's K experts count as used together") {
  RoutingStats s(1, 4, 2);
  s.set_lru_capacities({1, 2});
  const int32_t ids[] = {0, 1, 1, 2};  // token 0 -> {0, 1}, token 1 -> {1, 2}
  s.observe(0, 2, ids);                // no begin_request(): one is opened implicitly
  const RoutingStats::Layer l = s.report().layers[0];
  // Stack before token 1: [0 1] (the token's first choice in front): expert 1 has rank 1.
  CHECK(l.lru_hit_rate[0] == doctest::Approx(0.0));
  CHECK(l.lru_hit_rate[1] == doctest::Approx(0.25));
  CHECK(l.reuse_histogram[0] == 1);
  CHECK(l.cold == 3);
}

TEST_CASE("routing stats: chunked observation equals one call") {
  const int32_t ids[] = {3, 1, 4, 1, 5, 2, 6, 5, 3, 5, 7, 0};
  RoutingStats a(1, 8, 2), b(1, 8, 2);
  a.observe(0, 6, ids);
  b.observe(0, 2, ids);
  b.observe(0, 3, ids + 4);
  b.observe(0, 1, ids + 10);
  const auto ra = to_json(a.report()), rb = to_json(b.report());
  CHECK(ra == rb);
}

TEST_CASE("routing stats: bad input") {
  RoutingStats s(2, 4, 2);
  const int32_t bad[] = {0, 4};
  CHECK_THROWS_AS(s.observe(0, 1, bad), Error);
  const int32_t ok[] = {0, 1};
  CHECK_THROWS_AS(s.observe(2, 1, ok), Error);
  CHECK_THROWS_AS(RoutingStats(1, 4, 5), Error);
}

TEST_CASE("perplexity windows: non-overlapping and strided") {
  auto w = perplexity_windows(10, 4, 4);
  REQUIRE(w.size() == 3);
  CHECK((w[0].begin == 0 && w[0].end == 4 && w[0].score_from == 1));
  CHECK((w[1].begin == 4 && w[1].end == 8 && w[1].score_from == 5));
  CHECK((w[2].begin == 8 && w[2].end == 10 && w[2].score_from == 9));
  // A last window of one token predicts nothing and is left out.
  CHECK(perplexity_windows(9, 4, 4).size() == 2);
  // Stride 2: every token after the first is scored exactly once, with up to 3 tokens before it.
  w = perplexity_windows(10, 4, 2);
  REQUIRE(w.size() == 4);
  CHECK((w[1].begin == 2 && w[1].end == 6 && w[1].score_from == 4));
  CHECK((w[3].begin == 6 && w[3].end == 10 && w[3].score_from == 8));
  int64_t scored = 0;
  for (const auto& x : w) scored += x.end - x.score_from;
  CHECK(scored == 9);
  CHECK_THROWS_AS(perplexity_windows(10, 1, 1), Error);
  CHECK_THROWS_AS(perplexity_windows(10, 4, 5), Error);
}

TEST_CASE("token_nll is -log softmax") {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  CHECK(token_nll(logits, 2) == doctest::Approx(-std::log(std::exp(3.0) / z)));
  const std::vector<float> big = {1000.0f, 0.0f};  // no overflow
  CHECK(token_nll(big, 0) == doctest::Approx(0.0));
}
