// Bad input on the GPU: a VRAM budget too small names what needs how much; a missing device is a
// clear error; kernel argument errors name the op.
#include <string>

#include "common/error.h"
#include "runtime/engine/session.h"
#include "runtime/model/memory_model.h"
#include "tests/common/fixtures.h"
#include "tests/gpu/gpu_util.h"

using namespace cs;
using namespace cs::gputest;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_SUITE("errors") {
  TEST_CASE("a VRAM budget too small names what needs how much") {
    auto model = Model::load(test::fixture("qwen3moe"));
    CudaBackendOptions o;
    o.vram_budget = 64 * 1024;
    auto b = make_cuda_backend(o);
    const std::string e = error_of([&] { Session s(*model, *b); });
    CAPTURE(e);
    CHECK(e.find("VRAM budget") != std::string::npos);
    CHECK(e.find("experts") != std::string::npos);
    CHECK(e.find("KV cache") != std::string::npos);
    CHECK(b->memory_used() == 0);
    // A direct allocation over the budget says so too.
    const std::string e2 = error_of([&] { b->alloc(1 << 20); });
    CHECK(e2.find("exceeds the VRAM budget") != std::string::npos);
  }

  TEST_CASE("memory accounting returns to zero") {
    CudaBackendOptions o;
    auto b = make_cuda_backend(o);
    {
      Buffer x = b->alloc(1000), y = b->alloc(5000);
      CHECK(b->memory_used() == 6000);
    }
    CHECK(b->memory_used() == 0);
  }

  TEST_CASE("a device that does not exist is a clear error") {
    CudaBackendOptions o;
    o.device = 1000;
    const std::string e = error_of([&] { make_cuda_backend(o); });
    CHECK(e.find("device 1000 does not exist") != std::string::npos);
  }

  TEST_CASE("bad op arguments surface as errors naming the op") {
    Buffer q = gpu().alloc(4 * 6), k = gpu().alloc(4 * 6), out = gpu().alloc(4 * 6);
    AttentionArgs a;
    a.q = q.as<float>();
    a.k_cache = k.get();
    a.v_cache = k.get();
    a.T = 1;
    a.n_heads = 1;
    a.n_kv_heads = 1;
    a.head_dim = 6;  // not a multiple of 4
    a.out = out.as<float>();
    const std::string e = error_of([&] { gpu().attention(a); });
    CHECK(e.find("attention") != std::string::npos);
    SampleArgs s;
    s.top_k = 5000;
    const std::string e2 =
        error_of([&] { gpu().sample(q.as<float>(), 6, s, q.as<float>(), k.as<int32_t>()); });
    CHECK(e2.find("sample") != std::string::npos);
  }
}
