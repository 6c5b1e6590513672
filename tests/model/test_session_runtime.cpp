// SessionRuntime: the session layer under `coldstream chat` and the C API. Resident or through
// the offload engine from one configuration; a cancel stops a forward pass between MoE layers
// and leaves the context as it was.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/error.h"
#include "runtime/engine/session_runtime.h"
#include "runtime/engine/transformer.h"
#include "tests/common/fixtures.h"

using namespace cs;

namespace {

RuntimeConfig cpu_config(bool offload) {
  RuntimeConfig c;
  c.device = "cpu";
  c.load_text("[chat]\nsystem = \"not the engine's\"\n[device]\ncontext = 64\n", "test.toml");
  if (offload) c.set("device.vram_budget", "64MiB", "--vram-budget");
  return c;
}

}  // namespace

TEST_CASE("SessionRuntime: resident or offload from the configuration, same logits") {
  auto model = Model::load(test::fixture("qwen3moe"));
  const std::vector<int32_t> ids = {1, 5, 9, 200, 33, 7};
  std::vector<float> want;
  for (bool offload : {false, true}) {
    CAPTURE(offload);
    const RuntimeConfig c = cpu_config(offload);
    CHECK(c.use_offload == offload);
    SessionRuntime rt(*model, c);
    CHECK(rt.session().n_ctx() == 64);
    CHECK((rt.executor() != nullptr) == offload);
    CHECK((rt.telemetry() != nullptr) == offload);
    const std::span<const float> l = rt.session().eval(ids);
    if (!offload) {
      want.assign(l.begin(), l.end());
      CHECK(rt.memory().host_expert_bytes == 0);
      CHECK(rt.describe() == "experts resident on cpu");
    } else {
      CHECK(std::vector<float>(l.begin(), l.end()) == want);
      CHECK(rt.telemetry()->total.expert_uses > 0);
      CHECK(rt.memory().host_expert_bytes > 0);
      CHECK(rt.memory().device_bytes > 0);
      CHECK(rt.describe().starts_with("offload engine on cpu"));
    }
  }
}

TEST_CASE("SessionRuntime: a cancel stops the forward pass between layers, context unchanged") {
  auto model = Model::load(test::fixture("qwen3moe"));
  const std::vector<int32_t> first = {1, 5, 9}, more = {200, 33, 7};
  for (bool offload : {false, true}) {
    CAPTURE(offload);
    SessionRuntime ref(*model, cpu_config(offload));
    ref.session().eval(first);
    const std::span<const float> r = ref.session().eval(more);
    const std::vector<float> want(r.begin(), r.end());

    SessionRuntime rt(*model, cpu_config(offload));
    Session& s = rt.session();
    s.eval(first);
    s.cancel();
    CHECK_THROWS_WITH_AS(s.eval(more), doctest::Contains("cancelled before layer"), Error);
    try {
      s.eval(more);
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kCancelled);
    }
    CHECK(s.n_past() == 3);  // the cancelled calls added nothing
    s.clear_cancel();
    const std::span<const float> l = s.eval(more);
    CHECK(std::vector<float>(l.begin(), l.end()) == want);  // and left nothing behind
  }
}

TEST_CASE("RuntimeConfig: which keys turn the offload engine on; chat tables skipped") {
  RuntimeConfig c;
  c.load_text(
      "[chat]\ncontext = 5\n[sampling]\ntemperature = 0.1\n[device]\nbackend = \"cpu\"\n"
      "context = 128\nmax_batch = 64\n",
      "a.toml");
  CHECK_FALSE(c.use_offload);
  CHECK(c.offload.device.context == 128);
  CHECK(c.offload.device.max_batch == 64);
  c.set("device.context", "256", "--ctx");
  CHECK_FALSE(c.use_offload);
  c.set("cache.policy", "lfu", "--policy");
  CHECK(c.use_offload);
  RuntimeConfig d;
  d.load_text("[memory]\nhost_budget = \"1GiB\"\n", "b.toml");
  CHECK(d.use_offload);
  // Errors keep the file's own line numbers with the chat's tables blanked.
  RuntimeConfig e;
  CHECK_THROWS_WITH_AS(
      e.load_text("[chat]\nsystem = \"\"\"two\nlines\"\"\"\n[cache]\npolcy = 1\n", "c.toml"),
      doctest::Contains("c.toml:5:1: unknown key 'cache.polcy'"), Error);
  CHECK_THROWS_WITH_AS(e.load_text("[chat\n", "d.toml"), doctest::Contains("d.toml:1:"), Error);
  CHECK_THROWS_WITH_AS(e.load_file("/nonexistent.toml"), doctest::Contains("/nonexistent.toml"),
                       Error);
}

TEST_CASE("device.kv_dtype: 16-bit KV cache on the GPU by default, F32 on the CPU, settable") {
  CHECK(kv_cache_dtype("auto", "cpu") == DType::kF32);
  CHECK(kv_cache_dtype("auto", "cuda") == DType::kF16);
  CHECK(kv_cache_dtype("auto", "cuda:1") == DType::kF16);
  CHECK(kv_cache_dtype("bf16", "cuda:0") == DType::kBF16);
  CHECK(kv_cache_dtype("f32", "cuda:0") == DType::kF32);
  CHECK(kv_cache_dtype("f16", "cpu") == DType::kF16);
  CHECK_THROWS_WITH_AS(kv_cache_dtype("int4", "cpu"), doctest::Contains("device.kv_dtype"), Error);
  // A device key: it does not turn the offload engine on. A bad value names the place and choices.
  RuntimeConfig c = cpu_config(false);
  c.set("device.kv_dtype", "bf16", "--set");
  CHECK_FALSE(c.use_offload);
  CHECK_THROWS_WITH_AS(c.load_text("[device]\nkv_dtype = \"int4\"\n", "k.toml"),
                       doctest::Contains("k.toml:2:"), Error);
  CHECK_THROWS_WITH_AS(c.load_text("[device]\nkv_dtype = \"int4\"\n", "k.toml"),
                       doctest::Contains("expected one of auto, f32, f16, bf16"), Error);
  // The session uses it. Against the F32 cache on the CPU (measured on this fixture: F16 3.4e-4,
  // BF16 3.4e-3 of relative logit error; F16 keeps 3 more mantissa bits, hence the GPU default).
  auto model = Model::load(test::fixture("qwen3moe"));
  const std::vector<int32_t> ids = {1, 5, 9, 200, 33, 7, 12, 64};
  std::vector<float> f32;
  struct Case {
    const char* setting;
    DType dtype;
    double tolerance;
  };
  for (const Case& k : {Case{"auto", DType::kF32, 0}, Case{"f16", DType::kF16, 1e-3},
                        Case{"bf16", DType::kBF16, 1e-2}}) {
    CAPTURE(k.setting);
    RuntimeConfig r = cpu_config(false);
    r.set("device.kv_dtype", k.setting, "--set");
    SessionRuntime rt(*model, r);
    CHECK(rt.session().transformer().kv_dtype() == k.dtype);
    const std::span<const float> l = rt.session().eval(ids);
    if (f32.empty()) {
      f32.assign(l.begin(), l.end());
      continue;
    }
    const double e = test::max_rel_error(l.data(), f32.data(), f32.size());
    MESSAGE(std::string(k.setting), " KV cache against F32 on the CPU: max relative logit error ",
            e);
    CHECK(e > 0);  // the cache really is 16-bit
    CHECK(e < k.tolerance);
  }
}

TEST_CASE("device names: a bad GPU index is an error naming the flag, with or without offload") {
  CHECK(cuda_device_index("cuda", "--device") == 0);
  CHECK(cuda_device_index("cuda:3", "--device") == 3);
  auto model = Model::load(test::fixture("qwen3moe"));
  for (const char* bad : {"cuda:x", "cuda:", "cuda:-1", "cuda:99999999999", "cuda:1x"}) {
    CAPTURE(bad);
    for (bool offload : {false, true}) {
      CAPTURE(offload);
      RuntimeConfig c = cpu_config(offload);
      c.device = bad;
      // The offload path used to parse N with std::stoi: "internal error: stoi".
      try {
        SessionRuntime rt(*model, c);
        FAIL("accepted");
      } catch (const Error& e) {
        CHECK(std::string(e.what()) ==
              fmt::format("--device: '{}' is not cuda:N with N a GPU index", bad));
      }
    }
  }
}

TEST_CASE("a VRAM budget too small to start names the key and what needs how much") {
  auto model = Model::load(test::fixture("qwen3moe"));
  RuntimeConfig c = cpu_config(true);
  c.set("device.vram_budget", "1KiB", "--vram-budget");
  // The budgeted host backend used to fail at its first allocation ("GPU memory budget exceeded:
  // allocating ..."), naming neither the key nor what the memory was for.
  try {
    SessionRuntime rt(*model, c);
    FAIL("started");
  } catch (const Error& e) {
    const std::string m = e.what();
    CHECK(e.kind() == ErrorKind::kOutOfMemory);
    CHECK(m.starts_with("VRAM budget (device.vram_budget, --vram-budget) of 1.0 KiB is too small"));
    CHECK(m.find("the KV cache") != std::string::npos);
    CHECK(m.find("before any expert slot of the offload engine") != std::string::npos);
  }
}

TEST_CASE("resident_fit: the whole model against a GPU budget, experts from one expert's size") {
  // Under offload settings on a GPU, SessionRuntime runs resident when this says the model fits
  // (the GPU side is in tests/gpu/test_model.cpp).
  auto model = Model::load(test::fixture("qwen3moe"));
  TransformerOptions to;
  to.n_ctx = 64;
  to.kv_dtype = DType::kF16;
  const Footprint exact = transformer_footprint(*model, to, true, false, true);
  REQUIRE(exact.experts > 0);
  REQUIRE(exact.dense > 0);
  const uint64_t reserve = 1 << 20;
  const auto fit = resident_fit(*model, to, exact.total() + reserve, reserve);
  REQUIRE(fit.has_value());
  CHECK(fit->find("running resident") != std::string::npos);
  CHECK_FALSE(resident_fit(*model, to, exact.total() + reserve - 1, reserve).has_value());
  CHECK_FALSE(resident_fit(*model, to, 0, 0).has_value());  // no budget known: never
  // In host memory nothing but the KV cache and activations is placed.
  const Footprint host = transformer_footprint(*model, to, false, false, true);
  CHECK(host.dense == 0);
  CHECK(host.experts == 0);
  CHECK(host.kv == exact.kv);
}
