#include <algorithm>
#include <cmath>
#include <vector>

#include "common/half.h"
#include "kernels/cpu/ref_ops.h"

namespace cs::ref {
namespace {

float load(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::kF16:
      return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::kBF16:
      return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

void store(void* p, DType t, int64_t i, float v) {
  switch (t) {
    case DType::kF16:
      static_cast<uint16_t*>(p)[i] = f32_to_f16(v);
      break;
    case DType::kBF16:
      static_cast<uint16_t*>(p)[i] = f32_to_bf16(v);
      break;
    default:
      static_cast<float*>(p)[i] = v;
      break;
  }
}

}  // namespace

void kv_store(const float* k, const float* v, int T, int pos0, int kv_dim, DType kv_dtype,
              void* k_cache, void* v_cache, const int32_t* pos) {
  if (pos) pos0 = *pos;
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < kv_dim; ++i) {
      const int64_t dst = int64_t(pos0 + t) * kv_dim + i, src = int64_t(t) * kv_dim + i;
      store(k_cache, kv_dtype, dst, k[src]);
      store(v_cache, kv_dtype, dst, v[src]);
    }
}

void attention(const AttentionArgs& args) {
  AttentionArgs a = args;
  if (a.pos) a.pos0 = *a.pos;
  const int D = a.head_dim, group = a.n_heads / a.n_kv_heads;
  const int64_t q_stride = int64_t(a.n_heads) * D, kv_stride = int64_t(a.n_kv_heads) * D;
  std::vector<float> scores(static_cast<size_t>(a.pos0 + a.T));
  for (int t = 0; t < a.T; ++t) {
    const int n_keys = a.pos0 + t + 1;  // causal: this query sees itself and everything before
    for (int h = 0; h < a.n_heads; ++h) {
      const float* q = a.q + t * q_stride + int64_t(h) * D;
      const int64_t kv_off = int64_t(h / group) * D;
      float mx = -INFINITY;
      for (int s = 0; s < n_keys; ++s) {
        float acc = 0;
        for (int d = 0; d < D; ++d)
          acc += q[d] * load(a.k_cache, a.kv_dtype, s * kv_stride + kv_off + d);
        scores[s] = acc * a.scale;
        mx = std::max(mx, scores[s]);
      }
      float sum = 0;
      for (int s = 0; s < n_keys; ++s) sum += (scores[s] = std::exp(scores[s] - mx));
      float* o = a.out + t * q_stride + int64_t(h) * D;
      std::fill(o, o + D, 0.0f);
      for (int s = 0; s < n_keys; ++s) {
        const float p = scores[s] / sum;
        for (int d = 0; d < D; ++d)
          o[d] += p * load(a.v_cache, a.kv_dtype, s * kv_stride + kv_off + d);
      }
    }
  }
}

}  // namespace cs::ref
