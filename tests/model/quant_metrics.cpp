#include "tests/model/quant_metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "runtime/engine/session.h"
#include "tests/common/fixtures.h"

namespace cs::test {
namespace {

void accumulate(const std::vector<float>& got, const std::vector<float>& want, size_t V,
                QuantError& e) {
  for (size_t r = 0; r < want.size() / V; ++r) {
    const float* p = &want[r * V];
    const float* q = &got[r * V];
    e.top1 += (std::max_element(p, p + V) - p) == (std::max_element(q, q + V) - q);
    const double mp = *std::max_element(p, p + V), mq = *std::max_element(q, q + V);
    double zp = 0, zq = 0;
    for (size_t v = 0; v < V; ++v) zp += std::exp(p[v] - mp), zq += std::exp(q[v] - mq);
    double kl = 0;
    for (size_t v = 0; v < V; ++v) {
      const double lp = p[v] - mp - std::log(zp), lq = q[v] - mq - std::log(zq);
      kl += std::exp(lp) * (lp - lq);
    }
    e.mean_kl += kl;
    ++e.positions;
  }
}

void finish(QuantError& e) {
  e.top1 /= std::max(1, e.positions);
  e.mean_kl /= std::max(1, e.positions);
}

}  // namespace

QuantError error_vs_reference(const Model& m, const std::string& name) {
  Reference ref(name);
  auto be = make_cpu_reference_backend();
  QuantError e;
  for (const char* p : {"a", "b", "c", "d"}) {
    Session s(m, *be);
    const std::vector<float> got = s.eval_all(ref.ints(fmt::format("prompt.{}", p)));
    accumulate(got, ref.floats(fmt::format("logits.{}", p)), size_t(m.config().vocab_size), e);
  }
  finish(e);
  return e;
}

QuantError error_vs_model(const Model& m, const Model& reference,
                          const std::vector<std::vector<int32_t>>& prompts) {
  auto be = make_cpu_reference_backend();
  QuantError e;
  for (const auto& p : prompts) {
    Session a(m, *be), b(reference, *be);
    accumulate(a.eval_all(p), b.eval_all(p), size_t(m.config().vocab_size), e);
  }
  finish(e);
  return e;
}

}  // namespace cs::test
