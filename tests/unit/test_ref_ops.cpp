// Properties of the reference ops that do not need a model: the router, attention, RoPE.
#include <doctest/doctest.h>

#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/ref_ops.h"

using namespace cs;

TEST_CASE("router: softmax, top-k with ties to the lower index, optional renormalisation") {
  const float logits[6] = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 0.0f};
  int32_t ids[3];
  float w[3];
  ref::router(logits, 1, 6, 3, false, ids, w);
  CHECK(ids[0] == 1);
  CHECK(ids[1] == 3);
  CHECK(ids[2] == 2);
  double z = 0;
  for (float l : logits) z += std::exp(double(l));
  CHECK(w[0] == doctest::Approx(std::exp(3.0) / z));
  ref::router(logits, 1, 6, 3, true, ids, w);
  CHECK(w[0] + w[1] + w[2] == doctest::Approx(1.0f));
  CHECK(w[2] == doctest::Approx(std::exp(2.0) / (2 * std::exp(3.0) + std::exp(2.0))));
}

TEST_CASE("attention: one key gives back its value; GQA maps query heads onto shared kv heads") {
  const int D = 4, Q = 4, KV = 2;
  std::vector<float> q(Q * D, 0.3f), k(KV * D), v(KV * D);
  std::iota(k.begin(), k.end(), 0.0f);
  std::iota(v.begin(), v.end(), 10.0f);
  std::vector<float> out(Q * D, -1.0f);
  AttentionArgs a;
  a.q = q.data();
  a.k_cache = k.data();
  a.v_cache = v.data();
  a.T = 1;
  a.n_heads = Q;
  a.n_kv_heads = KV;
  a.head_dim = D;
  a.scale = 0.5f;
  a.out = out.data();
  ref::attention(a);
  for (int h = 0; h < Q; ++h)
    for (int d = 0; d < D; ++d) CHECK(out[h * D + d] == doctest::Approx(v[(h / 2) * D + d]));
}

TEST_CASE("attention is causal: a query never sees later keys") {
  const int D = 2, T = 3;
  std::vector<float> q(T * D, 1.0f), k(T * D, 0.0f), v(T * D);
  for (int t = 0; t < T; ++t) v[t * D] = v[t * D + 1] = float(t + 1);
  std::vector<float> out(T * D);
  AttentionArgs a{q.data(), k.data(), v.data(), DType::kF32, T, 0, 1, 1, D, 1.0f, out.data()};
  ref::attention(a);
  CHECK(out[0] == doctest::Approx(1.0f));  // sees key 0 only
  CHECK(out[2] == doctest::Approx(1.5f));  // mean of 1, 2
  CHECK(out[4] == doctest::Approx(2.0f));  // mean of 1, 2, 3
}

TEST_CASE("RoPE pairs dimension j with j + D/2 and preserves the norm") {
  const int D = 8;
  std::vector<float> inv = {1.0f, 0.1f, 0.01f, 0.001f};
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8};
  float norm0 = 0;
  for (float v : x) norm0 += v * v;
  ref::norm_rope(x.data(), 1, 1, D, MatView{}, 1e-6f, 3, RopeArgs{inv.data(), 1.0f});
  float norm1 = 0;
  for (float v : x) norm1 += v * v;
  CHECK(norm1 == doctest::Approx(norm0));
  // dimension 0 pairs with 4: rotated by angle 3 * 1.0
  CHECK(x[0] == doctest::Approx(1 * std::cos(3.0f) - 5 * std::sin(3.0f)));
  CHECK(x[4] == doctest::Approx(5 * std::cos(3.0f) + 1 * std::sin(3.0f)));
}
