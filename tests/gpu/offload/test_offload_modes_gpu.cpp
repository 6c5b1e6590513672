// The offload modes on the CUDA backend: hybrid (the GPU computes the hits while the CPU computes
// its experts and the copies land, then the copied experts accumulate and the CPU's sums are
// added), cpu and stream, on a synthetic Q4 model. The host arena is pinned in 1 MiB ranges, so
// with blobs of ~108 KiB many blob boundaries fall near range boundaries: a copy whose source
// spanned two registered ranges would fail (the bug the blob-aligned pin ranges fix).
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <cstring>

#include "cache/hybrid_chooser.h"
#include "kernels/cuda_backend.h"
#include "offload/cuda_support.h"
#include "runtime/engine/offload_moe_executor.h"
#include "runtime/engine/placement.h"
#include "runtime/engine/session.h"
#include "runtime/format/synth.h"
#include "tests/common/fixtures.h"

using namespace cs;

namespace {

constexpr double kTolerance = 1e-2;  // as tests/model/test_offload_hybrid.cpp; measured: TESTING.md

struct Outputs {
  std::vector<float> logits;  // prefill rows, then one row per forced token
  StepTelemetry decode;
};

Outputs run(const Model& m, Backend& b, OffloadMoeExecutor& ex) {
  const std::vector<int32_t> prompt = {1, 5, 9, 200, 17, 3, 77, 400, 2, 8, 31, 64};
  Outputs o;
  SessionOptions so;
  so.transformer.max_batch = 8;
  Session s(m, b, so, &ex);
  o.logits = s.eval_all(prompt);
  ex.reset_telemetry();
  for (int32_t t : {12, 900, 4, 57, 300, 6, 81, 2}) {
    std::span<const float> l = s.eval(std::vector<int32_t>{t});
    o.logits.insert(o.logits.end(), l.begin(), l.end());
  }
  o.decode = ex.telemetry().total;
  return o;
}

// A synthetic tiny Qwen3-MoE (Q4 experts) written into `tmp`.
std::unique_ptr<Model> tiny_model(test::TempDir& tmp) {
  SynthOptions syn;
  syn.shape = "tiny-qwen3";
  syn.out = tmp.file("tiny.cst");
  write_synth(syn);
  return Model::load(syn.out);
}

}  // namespace

TEST_CASE("gpu: offload modes hybrid and cpu agree with stream on the CUDA backend") {
  test::TempDir tmp;
  auto model = tiny_model(tmp);
  auto gpu = make_cuda_backend(0);
  auto cpu = make_cpu_backend();
  const int K = model->config().n_experts_per_tok;
  const size_t V = size_t(model->config().vocab_size);
  auto options = [&](OffloadMode mode) {
    OffloadOptions o;
    o.config.offload.mode = mode;
    o.config.device.max_batch = 8;
    o.config.memory.pin_chunk = 1ull << 20;
    o.gpu_slots = K + 2;
    o.cpu_backend = cpu.get();
    o.log = [](const std::string&) {};
    return o;
  };
  OffloadMoeExecutor stream(*gpu, *model, options(OffloadMode::kStream));
  const Outputs want = run(*model, *gpu, stream);
  CHECK(want.decode.demand > 0);
  // Synthetic costs that split every layer's misses between both channels.
  CostParams p;
  p.expert_bytes = stream.vram_plan().slot_bytes;
  p.copy_rate = double(p.expert_bytes) / 1e-3;
  p.dram_rate = double(p.expert_bytes) / 0.5e-3;
  p.cpu_fixed = 0;
  HybridChooser split{CostModel(p), 0.0};
  double measured = 0;
  std::vector<float> split_logits;
  for (const char* name : {"hybrid", "hybrid (split costs)", "cpu"}) {
    CAPTURE(name);
    const std::string n = name;
    OffloadOptions o = options(n == "cpu" ? OffloadMode::kCpu : OffloadMode::kHybrid);
    if (n == "hybrid (split costs)") o.chooser = &split;
    OffloadMoeExecutor ex(*gpu, *model, std::move(o));
    const Outputs got = run(*model, *gpu, ex);
    REQUIRE(got.logits.size() == want.logits.size());
    double e = 0;
    for (size_t r = 0; r < got.logits.size() / V; ++r)
      e = std::max(e, test::max_rel_error(&got.logits[r * V], &want.logits[r * V], V));
    measured = std::max(measured, e);
    MESSAGE(fmt::format(
        "{}: worst relative logit error {:.3e}; decode {} hits, {} copied, {} on "
        "the CPU",
        name, e, got.decode.hits + got.decode.waits, got.decode.demand, got.decode.cpu));
    CHECK(e < kTolerance);
    if (n != "hybrid") CHECK(got.decode.cpu > 0);
    if (n == "hybrid (split costs)") CHECK(got.decode.demand > 0);
    if (n == "hybrid (split costs)") split_logits = got.logits;
    if (n == "hybrid") MESSAGE(ex.describe());
  }
  MESSAGE(fmt::format("worst relative logit error, CUDA: {:.3e}", measured));
  // The executor's own copy engine is ordered against the backend's stream: a pass's copied
  // experts are queued behind their copies before the CPU starts. With a copy engine it did not
  // make (and no compute stream) it waits on the host instead. Same kernels in the same order;
  // only a prefetch that lands a little earlier or later can move an expert between the hits'
  // kernel and the copied experts' (another summation order), so the logits agree to rounding,
  // far inside what a kernel reading a slot before its copy landed would produce.
  OffloadOptions o = options(OffloadMode::kHybrid);
  o.chooser = &split;
  o.copy_engine = make_cuda_copy_engine(0, nullptr);
  OffloadMoeExecutor host_ordered(*gpu, *model, std::move(o));
  const Outputs got = run(*model, *gpu, host_ordered);
  REQUIRE(got.logits.size() == split_logits.size());
  CHECK(got.decode.demand > 0);
  double e = 0;
  for (size_t r = 0; r < got.logits.size() / V; ++r)
    e = std::max(e, test::max_rel_error(&got.logits[r * V], &split_logits[r * V], V));
  MESSAGE(fmt::format("copied experts queued on the GPU vs waited for on the host: {:.3e}", e));
  CHECK(e < 1e-4);
}

TEST_CASE("gpu: under offload the embedding table stays on the host, logits as on the GPU") {
  // The offload engine gathers embedding rows on the host (the table's VRAM goes to expert
  // slots); the dequantized rows are the GPU gather's exactly, so stream offload stays
  // bit-identical to the resident path, prefill and decode.
  test::TempDir tmp;
  auto model = tiny_model(tmp);
  auto gpu = make_cuda_backend(0);
  const std::vector<int32_t> prompt = {1, 5, 9, 200, 17, 3, 77, 400, 2, 8, 31, 64};
  SessionOptions so;
  so.transformer.max_batch = 8;
  auto logits = [&](Session& s) {
    std::vector<float> out = s.eval_all(prompt);
    for (int32_t t : {12, 900, 4}) {
      std::span<const float> l = s.eval(std::vector<int32_t>{t});
      out.insert(out.end(), l.begin(), l.end());
    }
    return out;
  };
  std::vector<float> want;
  size_t resident_bytes = 0;
  {
    Session s(*model, *gpu, so);
    CHECK_FALSE(s.transformer().host_embeddings());
    want = logits(s);
    resident_bytes = s.transformer().device_bytes();
  }
  size_t bytes[2] = {};  // on the GPU: with the table on the host, with it on the GPU
  for (auto mode :
       {TransformerOptions::HostEmbeddings::kAuto, TransformerOptions::HostEmbeddings::kOff}) {
    const bool on = mode == TransformerOptions::HostEmbeddings::kAuto;
    CAPTURE(on);
    OffloadOptions o;
    o.config.offload.mode = OffloadMode::kStream;
    o.config.device.max_batch = 8;
    o.gpu_slots = model->config().n_experts_per_tok + 2;
    o.log = [](const std::string&) {};
    OffloadMoeExecutor ex(*gpu, *model, std::move(o));
    SessionOptions eo = so;
    eo.transformer.host_embeddings = mode;
    Session s(*model, *gpu, eo, &ex);
    CHECK(s.transformer().host_embeddings() == on);
    const std::vector<float> got = logits(s);
    REQUIRE(got.size() == want.size());
    CHECK(std::memcmp(got.data(), want.data(), got.size() * 4) == 0);
    bytes[on ? 0 : 1] = s.transformer().device_bytes();
  }
  MESSAGE("transformer on the GPU: resident ", resident_bytes, " B; offload ", bytes[1],
          " B, with host embeddings ", bytes[0], " B");
  CHECK(bytes[1] - bytes[0] >= placed_bytes(model->weights().embed));
}
