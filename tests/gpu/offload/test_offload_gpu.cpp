// The offload engine's CUDA pieces on a real GPU: pinning the host arena in the background, the
// CUDA copy engine (own stream, events, compute fences), and the VRAM budget checked against the
// driver's own accounting (cudaMemGetInfo).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cuda_runtime.h>

#include <cstring>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "offload/budgeted_backend.h"
#include "offload/cuda_support.h"
#include "offload/host_arena.h"
#include "offload/vram_plan.h"

using namespace cs;

namespace {

// Device memory only (cudaMalloc): enough to test budgets and copies without a compute backend.
class DeviceMemory final : public Backend {
 public:
  const char* name() const override { return "cuda-memory"; }
  bool host_memory() const override { return false; }
  Buffer alloc(size_t bytes) override {
    void* p = nullptr;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess)
      fail(ErrorKind::kOutOfMemory, "cudaMalloc({}) failed", bytes);
    return Buffer(this, p, bytes);
  }
  void upload(void* d, const void* s, size_t n) override {
    cudaMemcpy(d, s, n, cudaMemcpyHostToDevice);
  }
  void download(void* d, const void* s, size_t n) override {
    cudaMemcpy(d, s, n, cudaMemcpyDeviceToHost);
  }
  void synchronize() override { cudaDeviceSynchronize(); }
  void embed(const MatView&, const int32_t*, int, float*) override { no(); }
  void rmsnorm(float*, const float*, const MatView&, float, int, int, float*) override { no(); }
  void add(float*, const float*, int64_t) override { no(); }
  void matmul(const float*, int, const MatView&, float*) override { no(); }
  void norm_rope(float*, int, int, int, const MatView&, float, int, const RopeArgs&) override {
    no();
  }
  void kv_store(const float*, const float*, int, int, int, DType, void*, void*,
                const int32_t*) override {
    no();
  }
  void attention(const AttentionArgs&) override { no(); }
  void router(const float*, int, int, int, bool, int32_t*, float*) override { no(); }
  void moe(const MoeArgs&) override { no(); }
  void sample(const float*, int, const SampleArgs&, const float*, int32_t*) override { no(); }

 protected:
  void free(void* p) override { cudaFree(p); }

 private:
  [[noreturn]] static void no() { fail(ErrorKind::kUnsupported, "memory-only test backend"); }
};

uint64_t used_bytes() {
  size_t free = 0, total = 0;
  cudaMemGetInfo(&free, &total);
  return uint64_t(total - free);
}

}  // namespace

TEST_CASE("gpu: the host arena pins in the background with cudaHostRegister") {
  auto pinner = make_cuda_pinner();
  REQUIRE(pinner);
  ArenaOptions o;
  o.bytes = 1ull << 30;
  o.pinner = pinner.get();
  o.pin_chunk = 64ull << 20;
  HostArena a(o);
  const PinStatus s = a.wait_pinned();
  CHECK_FALSE(s.failed);
  CHECK(s.pinned == o.bytes);
  MESSAGE("pinned 1 GiB in ", s.seconds, " s");
  unsigned flags = 0;
  CHECK(cudaHostGetFlags(&flags, a.data() + (512ull << 20)) == cudaSuccess);
}

TEST_CASE("gpu: the CUDA copy engine copies in order, reports tickets, honours compute fences") {
  auto pinner = make_cuda_pinner();
  ArenaOptions o;
  o.bytes = 64ull << 20;
  o.pinner = pinner.get();
  o.background = false;
  HostArena a(o);
  for (size_t i = 0; i < o.bytes; ++i) a.data()[i] = uint8_t(i * 131 + 7);
  DeviceMemory dev;
  Buffer d = dev.alloc(o.bytes);
  auto e = make_cuda_copy_engine(0, nullptr);
  uint64_t last = 0;
  for (size_t off = 0; off < o.bytes; off += 4u << 20) {
    e->fence_compute();
    last = e->copy(d.as<uint8_t>() + off, a.data() + off, 4u << 20);
  }
  e->wait(last);
  CHECK(e->done(1));
  CHECK(e->done(last));
  std::vector<uint8_t> back(o.bytes);
  dev.download(back.data(), d.get(), o.bytes);
  CHECK(std::memcmp(back.data(), a.data(), o.bytes) == 0);
  CHECK(e->bytes_copied() == o.bytes);
}

TEST_CASE("gpu: compute ordered after a copy (order_compute) sees its bytes, host not blocked") {
  auto pinner = make_cuda_pinner();
  ArenaOptions o;
  o.bytes = 256ull << 20;  // about 5 ms over PCIe: far longer than queueing the read-back
  o.pinner = pinner.get();
  o.background = false;
  HostArena a(o);
  for (size_t i = 0; i < o.bytes; i += 4096)
    std::memset(a.data() + i, int(i / 4096 * 29 + 3), 4096);
  DeviceMemory dev;
  Buffer d = dev.alloc(o.bytes);
  REQUIRE(cudaMemset(d.get(), 0, o.bytes) == cudaSuccess);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  cudaStream_t compute = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking) == cudaSuccess);
  auto e = make_cuda_copy_engine(0, compute);
  uint64_t last = 0;
  for (size_t off = 0; off < o.bytes; off += 16u << 20)
    last = e->copy(d.as<uint8_t>() + off, a.data() + off, 16u << 20);
  e->order_compute(last);
  const bool landed_at_return = e->done(last);
  // "Compute" on the compute stream: a read-back of the whole buffer into pinned memory.
  ArenaOptions ob = o;
  HostArena back(ob);
  std::memset(back.data(), 0xee, o.bytes);
  REQUIRE(cudaMemcpyAsync(back.data(), d.get(), o.bytes, cudaMemcpyDeviceToHost, compute) ==
          cudaSuccess);
  REQUIRE(cudaStreamSynchronize(compute) == cudaSuccess);
  CHECK(std::memcmp(back.data(), a.data(), o.bytes) == 0);
  CHECK(e->done(last));
  MESSAGE("copies had landed when order_compute returned: ", landed_at_return);
  CHECK_FALSE(landed_at_return);  // it queued a wait instead of blocking the host
  e->synchronize();
  cudaStreamDestroy(compute);
}

TEST_CASE("gpu: a VRAM budget holds in the driver's accounting") {
  cudaFree(nullptr);  // create the context first: the budget covers what the runtime allocates
  const uint64_t before = used_bytes();
  const uint64_t budget = 512ull << 20;
  DeviceMemory dev;
  BudgetedBackend b(dev, budget);
  {
    Buffer weights = b.alloc(200ull << 20);
    Buffer kv = b.alloc(64ull << 20);
    const VramPlan plan =
        plan_vram(budget, {{"allocated", b.allocated()}}, 10ull << 20, 8, 10000, "--vram-budget");
    Buffer slots = b.alloc(size_t(plan.slots) * plan.slot_bytes);
    CHECK(plan.slots == 24);
    CHECK_THROWS_AS(b.alloc(16ull << 20), Error);
    const uint64_t delta = used_bytes() - before;
    MESSAGE("driver delta ", delta >> 20, " MiB for a budget of ", budget >> 20, " MiB");
    CHECK(delta <= budget + (4ull << 20));  // the driver rounds each allocation up to 2 MiB
  }
}

int main(int argc, char** argv) {
  if (!cuda_available()) {
    std::fprintf(stderr, "no CUDA device: GPU tests not run\n");
    return 77;
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
