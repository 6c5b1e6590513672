#include "tests/common/int8_reference.h"

#include <cstdint>

#include "kernels/cpu/ref_ops.h"
#include "kernels/cpu/simd.h"

namespace cs::test {

std::vector<float> int8_rounded(const float* v, int64_t C) {
  std::vector<uint8_t> mem(size_t(cpu::qact_bytes(C)) + 64);
  uint8_t* p = mem.data() + (64 - reinterpret_cast<uintptr_t>(mem.data()) % 64) % 64;
  const cpu::QActRow q = cpu::qact_view(p, C);
  cpu::kernels_for(CpuIsa::kScalar).quantize(v, C, q);  // natural order at this level
  std::vector<float> r(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) r[size_t(c)] = q.s[c / 32] * float(q.q[c]);
  return r;
}

std::vector<float> int8_rounded(const std::vector<float>& x, size_t rows) {
  rows = rows ? rows : x.size();
  std::vector<float> out;
  out.reserve(x.size());
  for (size_t r0 = 0; r0 < x.size(); r0 += rows) {
    const std::vector<float> r = int8_rounded(x.data() + r0, int64_t(rows));
    out.insert(out.end(), r.begin(), r.end());
  }
  return out;
}

void int8_rounded_moe(const std::function<ExpertWeights(int32_t)>& expert, const float* x, int T,
                      int hidden, int K, const int32_t* ids, const float* weights, float* out) {
  std::vector<float> g, u, y(static_cast<size_t>(hidden));
  for (int t = 0; t < T; ++t) {
    const std::vector<float> xr = int8_rounded(x + int64_t(t) * hidden, hidden);
    for (int j = 0; j < K; ++j) {
      const ExpertWeights w = expert(ids[t * K + j]);
      if (w.gate.empty()) continue;
      g.resize(size_t(w.gate.rows));
      u.resize(g.size());
      ref::gemv(w.gate, xr.data(), g.data());
      ref::gemv(w.up, xr.data(), u.data());
      for (size_t i = 0; i < g.size(); ++i) g[i] = ref::silu(g[i]) * u[i];
      const std::vector<float> h = int8_rounded(g.data(), int64_t(g.size()));
      ref::gemv(w.down, h.data(), y.data());
      for (int i = 0; i < hidden; ++i) out[int64_t(t) * hidden + i] += weights[t * K + j] * y[i];
    }
  }
}

}  // namespace cs::test
