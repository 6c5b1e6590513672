// The CPU reference backend: host memory and the plain ops of ref_ops.h.
#include <cstdlib>
#include <cstring>

#include "common/error.h"
#include "kernels/backend.h"
#include "kernels/cpu/ref_ops.h"

namespace cs {

namespace {

class CpuReferenceBackend final : public Backend {
 public:
  const char* name() const override { return "cpu-reference"; }
  bool host_memory() const override { return true; }

  Buffer alloc(size_t bytes) override {
    // 64-byte alignment for SIMD; at least one byte so the pointer is never null.
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (!p) fail(ErrorKind::kOutOfMemory, "cpu backend: cannot allocate {} bytes", bytes);
    return Buffer(this, p, bytes);
  }
  void upload(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void synchronize() override {}

  void embed(const MatView& table, const int32_t* ids, int T, float* out) override {
    ref::embed(table, ids, T, out);
  }
  void rmsnorm(float* x, const float* residual, const MatView& w, float eps, int T, int dim,
               float* out) override {
    ref::rmsnorm(x, residual, w, eps, T, dim, out);
  }
  void add(float* x, const float* y, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) x[i] += y[i];
  }
  void matmul(const float* x, int T, const MatView& w, float* out) override {
    ref::matmul(x, T, w, out);
  }
  void norm_rope(float* x, int T, int heads, int head_dim, const MatView& norm, float eps, int pos0,
                 const RopeArgs& rope) override {
    ref::norm_rope(x, T, heads, head_dim, norm, eps, pos0, rope);
  }
  void kv_store(const float* k, const float* v, int T, int pos0, int kv_dim, DType kv_dtype,
                void* k_cache, void* v_cache, const int32_t* pos) override {
    ref::kv_store(k, v, T, pos0, kv_dim, kv_dtype, k_cache, v_cache, pos);
  }
  void attention(const AttentionArgs& a) override { ref::attention(a); }
  void router(const float* logits, int T, int n_experts, int k, bool renormalize, int32_t* ids,
              float* weights) override {
    ref::router(logits, T, n_experts, k, renormalize, ids, weights);
  }
  void moe(const MoeArgs& a) override { ref::moe(a); }
  void sample(const float* logits, int V, const SampleArgs& s, const float* u,
              int32_t* token) override {
    *token = ref::sample(logits, V, s, *u);
  }

 protected:
  void free(void* ptr) override { std::free(ptr); }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_reference_backend() {
  return std::make_unique<CpuReferenceBackend>();
}

}  // namespace cs
