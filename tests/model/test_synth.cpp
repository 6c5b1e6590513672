// Synthetic models: routing is real (every expert used, near-uniform without --skew, skewed with
// it), activations stay finite, and the GGUF twin holds exactly the same weights.
#include <doctest/doctest.h>

#include <cmath>

#include "kernels/quant.h"
#include "runtime/engine/routing_probe.h"
#include "runtime/engine/session.h"
#include "runtime/format/checkpoint.h"
#include "runtime/format/converter.h"
#include "runtime/format/synth.h"
#include "tests/common/fixtures.h"

using namespace cs;

namespace {

RoutingStats probe(const std::string& path, int decode) {
  auto model = Model::load(path);
  auto be = make_cpu_reference_backend();
  return probe_routing(*model, *be, 16, decode, 7);
}

}  // namespace

TEST_CASE("synth: 1000 decoded tokens use every expert of every layer, near-uniformly") {
  test::TempDir tmp;
  SynthOptions o;
  o.shape = "tiny-qwen3";
  o.out = tmp.file("u.cst");
  write_synth(o);
  const RoutingStats st = probe(o.out, 1000);
  MESSAGE("uniform: min normalized entropy " << st.min_normalized_entropy() << ", experts used "
                                             << st.min_experts_used() << " of 16");
  CHECK(st.finite);
  CHECK(st.min_experts_used() == 16);
  CHECK(st.min_normalized_entropy() > 0.97);
  for (size_t i = 0; i < st.counts.size(); ++i) CHECK(st.top_share(i) < 2.0 / 16);
}

TEST_CASE("synth --skew: expert popularity becomes skewed (Zipf), activations stay finite") {
  test::TempDir tmp;
  SynthOptions o;
  o.shape = "tiny-qwen3";
  o.skew = 1.2;
  o.out = tmp.file("s.cst");
  write_synth(o);
  const RoutingStats st = probe(o.out, 1000);
  MESSAGE("skew 1.2: mean normalized entropy " << st.mean_normalized_entropy());
  CHECK(st.finite);
  CHECK(st.mean_normalized_entropy() < 0.85);
  for (size_t i = 0; i < st.counts.size(); ++i) CHECK(st.top_share(i) > 2.0 / 16);
}

TEST_CASE("synth weights are zero-mean") {
  test::TempDir tmp;
  SynthOptions o;
  o.shape = "tiny-qwen3";
  o.out = tmp.file("z.cst");
  write_synth(o);
  auto model = Model::load(o.out);
  double sum = 0, sq = 0;
  int64_t n = 0;
  for (int e = 0; e < model->config().n_experts; ++e) {
    const MatView g = model->experts().host_view(0, e).gate;
    std::vector<float> row(static_cast<size_t>(g.cols));
    for (int64_t r = 0; r < g.rows; ++r) {
      dequantize_row(g, r, row.data());
      for (float x : row) sum += x, sq += double(x) * x, ++n;
    }
  }
  const double mean = sum / double(n), sd = std::sqrt(sq / double(n) - mean * mean);
  CHECK(std::fabs(mean) < 0.01 * sd);  // a plain 4-bit code would give mean -0.5 d (~ -0.1 sd)
}

TEST_CASE("synth --gguf: the GGUF twin converts back to bit-identical logits (Qwen3, Mixtral)") {
  for (const char* shape : {"tiny-qwen3", "tiny-mixtral"}) {
    test::TempDir tmp;
    SynthOptions o;
    o.shape = shape;
    o.out = tmp.file("a.cst");
    o.gguf = tmp.file("a.gguf");
    write_synth(o);
    convert_to_packed(*open_checkpoint(o.gguf), tmp.file("b.cst"), {});
    auto a = Model::load(o.out), b = Model::load(tmp.file("b.cst"));
    auto be = make_cpu_reference_backend();
    Session sa(*a, *be), sb(*b, *be);
    const std::vector<int32_t> ids = {5, 9, 2, 6, 5, 3};
    CAPTURE(shape);
    CHECK(sa.eval_all(ids) == sb.eval_all(ids));
  }
}
