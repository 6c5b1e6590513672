// Helpers shared by the GPU micro-benchmarks (bench_kernels.cpp, bench_prefill.cpp).
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/ref_ops.h"
#include "kernels/cuda/cuda_util.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda_backend.h"
#include "kernels/expert_layout.h"

namespace cs::cuda::bench {

class Stream {
 public:
  Stream() { check(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), "cudaStreamCreate"); }
  ~Stream() { cudaStreamDestroy(s_); }
  operator cudaStream_t() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

// Median milliseconds of one call of f(i), timed as `inner` back-to-back calls per run.
template <typename F>
inline double median_ms(cudaStream_t s, int reps, int inner, F&& f) {
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "cudaEventCreate");
  check(cudaEventCreate(&b), "cudaEventCreate");
  for (int i = 0; i < std::max(2, inner); ++i) f(i);  // warm-up
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    check(cudaEventRecord(a, s), "cudaEventRecord");
    for (int i = 0; i < inner; ++i) f(i);
    check(cudaEventRecord(b, s), "cudaEventRecord");
    check(cudaEventSynchronize(b), "cudaEventSynchronize");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
    t.push_back(double(ms) / inner);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// A set of Q4 expert blobs in device memory with random zero-mean codes and scales that keep
// activations near unit size.
struct DeviceExperts {
  ExpertLayout layout;
  DeviceBuffer mem;
  int count = 0;
  DeviceExperts(int n, int H, int I, int group, cudaStream_t s, uint64_t seed)
      : layout(make_expert_layout(DType::kQ4, H, I, group, false)),
        mem(size_t(n) * layout.bytes),
        count(n) {
    for (int e = 0; e < n; ++e) {
      const ExpertWeights w = view(e);
      for (const MatView* m : {&w.gate, &w.up, &w.down}) {
        check(cuda::fill_q4_codes(const_cast<void*>(m->data), size_t(m->rows * m->cols / 2),
                                  seed + 3 * e + uint64_t(m - &w.gate), s),
              "fill");
        const float d = 1.0f / (4.3f * std::sqrt(float(m->cols)));
        check(cuda::fill_uniform(const_cast<uint16_t*>(m->scales), DType::kF16,
                                 size_t(m->rows * (m->cols / group)), 0.5f * d, 1.5f * d,
                                 seed * 7 + e, s),
              "fill");
      }
    }
  }
  ExpertWeights view(int e) const {
    return expert_views(layout, mem.get<uint8_t>() + size_t(e) * layout.bytes);
  }
  size_t weight_bytes() const {  // codes and scales of one expert, without padding
    const MatLayout& g = layout.gate;
    return 3 * size_t(g.rows * g.cols / 2 + g.rows * (g.cols / g.group) * 2);
  }
  // Host copy of expert e (blob bytes) for the CPU reference.
  std::vector<uint8_t> download(int e) const {
    std::vector<uint8_t> h(layout.bytes);
    check(cudaMemcpy(h.data(), mem.get<uint8_t>() + size_t(e) * layout.bytes, layout.bytes,
                     cudaMemcpyDeviceToHost),
          "cudaMemcpy");
    return h;
  }
};

inline std::vector<float> download_floats(const float* d, size_t n) {
  std::vector<float> h(n);
  check(cudaMemcpy(h.data(), d, n * 4, cudaMemcpyDeviceToHost), "cudaMemcpy");
  return h;
}

inline double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num = std::max(num, double(std::fabs(got[i] - want[i])));
    den = std::max(den, double(std::fabs(want[i])));
  }
  return den > 0 ? num / den : num;
}

// CPU reference of one MoE call over host copies of the experts it uses.
inline std::vector<float> reference_moe(const DeviceExperts& ex, const std::vector<float>& x, int T,
                                        int H, const std::vector<int32_t>& ids,
                                        const std::vector<float>& w, int K) {
  std::vector<std::vector<uint8_t>> blobs(size_t(ex.count));
  std::vector<ExpertWeights> table(size_t(ex.count));
  for (int p = 0; p < T * K; ++p) {
    const int e = ids[p];
    if (blobs[e].empty()) {
      blobs[e] = ex.download(e);
      table[e] = expert_views(ex.layout, blobs[e].data());
    }
  }
  std::vector<float> out(size_t(T) * H);
  MoeArgs a;
  a.x = x.data();
  a.T = T;
  a.hidden = H;
  a.ids = ids.data();
  a.weights = w.data();
  a.k = K;
  a.table = table.data();
  a.n_experts = ex.count;
  a.out = out.data();
  ref::moe(a);
  return out;
}

}  // namespace cs::cuda::bench
