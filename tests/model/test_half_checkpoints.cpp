// F16 and BF16 checkpoints load (memory-mapped, read in their own dtype) and stay close to the
// F32 reference: the only difference is the rounding of the stored weights. Measured: BF16
// Qwen3-MoE 1.1e-1 max relative logit error (38/40 top-1), F16 Mixtral 7e-3 (40/40); these
// fixtures amplify weight rounding on purpose (large random weights).
#include <doctest/doctest.h>

#include <fmt/format.h>

#include "kernels/backend.h"
#include "runtime/engine/sampler.h"
#include "runtime/engine/session.h"
#include "tests/common/fixtures.h"

using namespace cs;

namespace {

void check_half(const std::string& name, const std::string& dtype, double tolerance) {
  test::TempDir tmp;
  test::write_converted_copy(test::fixture(name), tmp.file(name), dtype);
  auto model = Model::load(tmp.file(name));
  CHECK(model->weights().embed.dtype == (dtype == "BF16" ? DType::kBF16 : DType::kF16));
  CHECK(model->experts().host_view(0, 0).gate.dtype == model->weights().embed.dtype);
  test::Reference ref(name);
  auto backend = make_cpu_reference_backend();
  const int V = model->config().vocab_size;
  Session s(*model, *backend);
  const std::vector<int32_t> prompt = ref.ints("prompt.d");
  const std::vector<float> want = ref.floats("logits.d");
  const std::vector<float> got = s.eval_all(prompt);
  int top1 = 0;
  double worst = 0;
  for (size_t r = 0; r < prompt.size(); ++r) {
    worst = std::max(worst, test::max_rel_error(&got[r * V], &want[r * V], size_t(V)));
    top1 += argmax({&got[r * V], size_t(V)}) == argmax({&want[r * V], size_t(V)});
  }
  MESSAGE(fmt::format("{} {}: max relative logit error {:.2e}, top-1 agreement {}/{}", name, dtype,
                      worst, top1, prompt.size()));
  CHECK(worst > 0);  // the weights really were rounded
  CHECK(worst < tolerance);
  CHECK(top1 >= int(prompt.size()) * 9 / 10);
}

}  // namespace

TEST_CASE("BF16 checkpoint: Qwen3-MoE") {
  check_half("qwen3moe", "BF16", 0.2);
}
TEST_CASE("F16 checkpoint: Mixtral (sharded)") {
  check_half("mixtral", "F16", 0.01);
}
