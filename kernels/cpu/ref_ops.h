// The CPU reference ops as free functions over host memory: plain, readable FP32 loops.
// These define what each op computes; every faster implementation is tested against them.
// See kernels/backend.h for the meaning of each op and its arguments.
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace cs::ref {

void embed(const MatView& table, const int32_t* ids, int T, float* out);
void rmsnorm(float* x, const float* residual, const MatView& w, float eps, int T, int dim,
             float* out);
void matmul(const float* x, int T, const MatView& w, float* out);
void norm_rope(float* x, int T, int heads, int head_dim, const MatView& norm, float eps, int pos0,
               const RopeArgs& rope);
void kv_store(const float* k, const float* v, int T, int pos0, int kv_dim, DType kv_dtype,
              void* k_cache, void* v_cache, const int32_t* pos = nullptr);
void attention(const AttentionArgs& a);
void router(const float* logits, int T, int n_experts, int k, bool renormalize, int32_t* ids,
            float* weights);
void moe(const MoeArgs& a);
// The sampling rule every backend follows (see SampleArgs). `u` in [0, 1).
int32_t sample(const float* logits, int V, const SampleArgs& s, float u);

// Helpers shared by the reference ops and their tests.
float dot(const float* a, const float* b, int64_t n);
inline float silu(float x) {
  return x / (1.0f + __builtin_expf(-x));
}
// y[N] = W x for one input row.
void gemv(const MatView& w, const float* x, float* y);

}  // namespace cs::ref
