// A Backend that forwards every op to another and counts the memory allocated through it,
// refusing an allocation that would pass a limit: the runtime's guarantee that it never uses
// more GPU memory than its budget, checked where the memory is taken. For backends without a
// budget of their own (the CPU backends, tests); the CUDA backend enforces
// CudaBackendOptions::vram_budget itself. Both report Backend::memory_used()/memory_budget().
//
// Not final: tests derive from it to change one op of a real backend (e.g. its timing marks).
//
// Thread-safety: as the wrapped backend (one thread at a time).
#pragma once

#include <cstdint>
#include <unordered_map>

#include "kernels/backend.h"

namespace cs {

class BudgetedBackend : public Backend {
 public:
  // limit 0: unlimited (count only).
  BudgetedBackend(Backend& inner, uint64_t limit);
  Backend& inner() { return inner_; }
  void set_limit(uint64_t limit) { limit_ = limit; }
  uint64_t limit() const { return limit_; }
  uint64_t allocated() const { return allocated_; }
  uint64_t peak() const { return peak_; }

  const char* name() const override { return inner_.name(); }
  bool host_memory() const override { return inner_.host_memory(); }
  // Throws cs::Error (kOutOfMemory) naming the budget when `bytes` does not fit.
  Buffer alloc(size_t bytes) override;
  void upload(void* dst, const void* src, size_t bytes) override { inner_.upload(dst, src, bytes); }
  void download_async(void* dst, const void* src, size_t bytes) override {
    inner_.download_async(dst, src, bytes);
  }
  void download(void* dst, const void* src, size_t bytes) override {
    inner_.download(dst, src, bytes);
  }
  void synchronize() override { inner_.synchronize(); }
  void* native_stream() override { return inner_.native_stream(); }
  size_t memory_used() const override { return allocated_; }
  size_t memory_budget() const override { return limit_; }
  void embed(const MatView& t, const int32_t* ids, int T, float* out) override {
    inner_.embed(t, ids, T, out);
  }
  void rmsnorm(float* x, const float* residual, const MatView& w, float eps, int T, int dim,
               float* out) override {
    inner_.rmsnorm(x, residual, w, eps, T, dim, out);
  }
  void add(float* x, const float* y, int64_t n) override { inner_.add(x, y, n); }
  void matmul(const float* x, int T, const MatView& w, float* out) override {
    inner_.matmul(x, T, w, out);
  }
  uint64_t mark() override { return inner_.mark(); }
  double mark_seconds(uint64_t from, uint64_t to) override { return inner_.mark_seconds(from, to); }
  void matmuls(const float* x, int T, const MatView* const* w, float* const* out, int n) override {
    inner_.matmuls(x, T, w, out, n);
  }
  void norm_rope(float* x, int T, int heads, int head_dim, const MatView& norm, float eps, int pos0,
                 const RopeArgs& rope) override {
    inner_.norm_rope(x, T, heads, head_dim, norm, eps, pos0, rope);
  }
  void kv_store(const float* k, const float* v, int T, int pos0, int kv_dim, DType kv_dtype,
                void* k_cache, void* v_cache, const int32_t* pos = nullptr) override {
    inner_.kv_store(k, v, T, pos0, kv_dim, kv_dtype, k_cache, v_cache, pos);
  }
  void qk_norm_rope_store(float* q, float* k, const float* v, int T, int n_heads, int n_kv_heads,
                          int head_dim, const MatView& q_norm, const MatView& k_norm, float eps,
                          int pos0, const RopeArgs& rope, DType kv_dtype, void* k_cache,
                          void* v_cache) override {
    inner_.qk_norm_rope_store(q, k, v, T, n_heads, n_kv_heads, head_dim, q_norm, k_norm, eps, pos0,
                              rope, kv_dtype, k_cache, v_cache);
  }
  void attention(const AttentionArgs& a) override { inner_.attention(a); }
  void qk_attention(const AttentionArgs& a, const QkPrologue& p) override {
    inner_.qk_attention(a, p);
  }
  void router(const float* logits, int T, int n_experts, int k, bool renormalize, int32_t* ids,
              float* weights) override {
    inner_.router(logits, T, n_experts, k, renormalize, ids, weights);
  }
  void route(const float* x, int T, const MatView& w, int k, bool renormalize, float* logits,
             int32_t* ids, float* weights) override {
    inner_.route(x, T, w, k, renormalize, logits, ids, weights);
  }
  void moe(const MoeArgs& a) override { inner_.moe(a); }
  void moe_while(const MoeArgs& a, const std::function<void()>& caller_work) override {
    inner_.moe_while(a, caller_work);
  }
  void sample(const float* logits, int V, const SampleArgs& s, const float* u,
              int32_t* token) override {
    inner_.sample(logits, V, s, u, token);
  }
  bool supports_sampling(const SampleArgs& s) const override { return inner_.supports_sampling(s); }
  // Graphs are not forwarded: a captured step could not re-plan expert placement.

 protected:
  void free(void* ptr) override;

 private:
  Backend& inner_;
  uint64_t limit_;
  uint64_t allocated_ = 0, peak_ = 0;
  std::unordered_map<void*, Buffer> live_;  // the inner backend's buffers, by pointer
};

}  // namespace cs
