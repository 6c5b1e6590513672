// The fast CPU backend: the ops of backend.h on the SIMD kernel tables (simd.h), the MoE kernel
// (cpu_moe.h) and a thread pool. Small ops that are not worth a kernel reuse the reference loops,
// split over tokens or heads where that matters.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_moe.h"
#include "kernels/cpu/ref_ops.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"

namespace cs {
namespace {

constexpr int kTokBlock = 32;  // tokens per pass over a unit of weight rows

float load_kv(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::kF16:
      return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::kBF16:
      return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& o)
      : isa_(resolve_cpu_isa(o.isa)), k_(cpu::kernels_for(isa_)), moe_(isa_) {
    moe_.set_prefetch(o.prefetch);
    if (o.pool) {
      pool_ = o.pool;
    } else {
      owned_pool_.emplace(pool_options(o));
      pool_ = &*owned_pool_;
    }
    name_ = std::string("cpu-") + cpu_isa_name(isa_);
  }

  const char* name() const override { return name_.c_str(); }
  bool host_memory() const override { return true; }

  Buffer alloc(size_t bytes) override {
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
    per_token(T, [&](int t) {
      const int64_t o = int64_t(t) * dim;
      ref::rmsnorm(x + o, residual ? residual + o : nullptr, w, eps, 1, dim, out + o);
    });
  }
  void add(float* x, const float* y, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) x[i] += y[i];
  }
  void matmul(const float* x, int T, const MatView& w, float* out) override;
  void norm_rope(float* x, int T, int heads, int head_dim, const MatView& norm, float eps, int pos0,
                 const RopeArgs& rope) override {
    if (rope.pos) pos0 = *rope.pos;
    per_token(T, [&](int t) {
      ref::norm_rope(x + int64_t(t) * heads * head_dim, 1, heads, head_dim, norm, eps, pos0 + t,
                     rope);
    });
  }
  void kv_store(const float* k, const float* v, int T, int pos0, int kv_dim, DType kv_dtype,
                void* k_cache, void* v_cache, const int32_t* pos) override {
    ref::kv_store(k, v, T, pos0, kv_dim, kv_dtype, k_cache, v_cache, pos);
  }
  void attention(const AttentionArgs& a) override;
  void router(const float* logits, int T, int n_experts, int k, bool renormalize, int32_t* ids,
              float* weights) override {
    ref::router(logits, T, n_experts, k, renormalize, ids, weights);
  }
  void moe(const MoeArgs& a) override { moe_while(a, nullptr); }
  void moe_while(const MoeArgs& a, const std::function<void()>& caller_work) override;
  void sample(const float* logits, int V, const SampleArgs& s, const float* u,
              int32_t* token) override {
    *token = ref::sample(logits, V, s, *u);
  }

 protected:
  void free(void* ptr) override { std::free(ptr); }

 private:
  // Runs fn(t) for each token, on the pool when there are enough tokens to pay for it.
  template <typename F>
  void per_token(int T, F&& fn) {
    if (T < 4) {
      for (int t = 0; t < T; ++t) fn(t);
      return;
    }
    pool_->run(T, [&](int64_t t, int) { fn(int(t)); });
  }

  CpuIsa isa_;
  const cpu::CpuKernels& k_;
  CpuMoe moe_;
  std::optional<ThreadPool> owned_pool_;
  ThreadPool* pool_ = nullptr;
  std::string name_;
  cpu::Scratch xq_;
  std::vector<std::vector<float>> att_scores_;  // per pool thread
  std::vector<std::vector<int32_t>> moe_rows_;  // per expert
  std::vector<std::vector<float>> moe_w_;       // per expert
  std::vector<CpuMoeTask> moe_tasks_;
};

void CpuBackend::matmul(const float* x, int T, const MatView& w, float* out) {
  if (T <= 0 || w.rows == 0) return;
  const int64_t N = w.rows, C = w.cols;
  const bool quant = w.quantized();
  if (quant && (C % 32 != 0 || C % w.group != 0))
    fail(ErrorKind::kInvalidArgument, "matmul: {} weights with {} columns and group {}",
         dtype_name(w.dtype), C, w.group);
  const int64_t qbytes = quant ? cpu::qact_bytes(C) : 0;
  uint8_t* xq = static_cast<uint8_t*>(xq_.get(size_t(qbytes) * size_t(T) + 64));
  if (quant)
    per_token(
        T, [&](int t) { k_.quantize(x + int64_t(t) * C, C, cpu::qact_view(xq + t * qbytes, C)); });
  // Units of rows: at least 4 per thread for balance, whole tiles, at most 256 rows.
  const int64_t threads = pool_->size();
  int64_t unit = (N + threads * 4 - 1) / (threads * 4);
  unit = std::clamp<int64_t>((unit + 3) / 4 * 4, 4, 256);
  const int64_t n_units = (N + unit - 1) / unit;
  pool_->run(n_units, [&](int64_t u, int) {
    const int64_t n0 = u * unit, n1 = std::min(N, n0 + unit);
    cpu::QActRow acts[kTokBlock];
    const float* xs[kTokBlock];
    for (int tb = 0; tb < T; tb += kTokBlock) {
      const int nt = std::min(kTokBlock, T - tb);
      for (int t = 0; t < nt; ++t) {
        if (quant)
          acts[t] = cpu::qact_view(xq + (tb + t) * qbytes, C);
        else
          xs[t] = x + int64_t(tb + t) * C;
      }
      for (int64_t n = n0; n < n1; n += cpu::kMaxTileRows) {
        const int rows = int(std::min<int64_t>(cpu::kMaxTileRows, n1 - n));
        float* o = out + int64_t(tb) * N + n;
        if (quant) {
          cpu::QRows q;
          q.dtype = w.dtype;
          q.group = w.group;
          q.cols = C;
          q.n = rows;
          q.prefetch = moe_.prefetch();
          for (int r = 0; r < rows; ++r) {
            q.codes[r] = cpu::q_row_codes(w, n + r);
            q.scales[r] = cpu::q_row_scales(w, n + r);
            q.mins[r] = cpu::q_row_mins(w, n + r);
          }
          k_.qdot(q, acts, nt, o, 1, N);
        } else {
          cpu::FRows f;
          f.dtype = w.dtype;
          f.cols = C;
          f.n = rows;
          for (int r = 0; r < rows; ++r) f.data[r] = cpu::f_row(w, n + r);
          k_.fdot(f, xs, nt, o, 1, N);
        }
      }
    }
  });
}

void CpuBackend::attention(const AttentionArgs& args) {
  AttentionArgs a = args;
  if (a.pos) a.pos0 = *a.pos;
  const int D = a.head_dim, group = a.n_heads / a.n_kv_heads;
  const int64_t q_stride = int64_t(a.n_heads) * D, kv_stride = int64_t(a.n_kv_heads) * D;
  const size_t elem = a.kv_dtype == DType::kF32 ? 4 : 2;
  att_scores_.resize(size_t(pool_->size()));
  for (auto& s : att_scores_) s.resize(size_t(a.pos0 + a.T));
  pool_->run(int64_t(a.T) * a.n_heads, [&](int64_t unit, int thread) {
    const int t = int(unit / a.n_heads), h = int(unit % a.n_heads);
    const int n_keys = a.pos0 + t + 1;  // causal
    const float* q = a.q + t * q_stride + int64_t(h) * D;
    const int64_t kv_off = int64_t(h / group) * D;
    float* scores = att_scores_[size_t(thread)].data();
    cpu::FRows f;
    f.dtype = a.kv_dtype;
    f.cols = D;
    for (int s = 0; s < n_keys; s += cpu::kMaxTileRows) {
      f.n = std::min(cpu::kMaxTileRows, n_keys - s);
      for (int r = 0; r < f.n; ++r)
        f.data[r] = static_cast<const uint8_t*>(a.k_cache) + ((s + r) * kv_stride + kv_off) * elem;
      k_.fdot(f, &q, 1, scores + s, 1, 1);
    }
    float mx = -INFINITY;
    for (int s = 0; s < n_keys; ++s) mx = std::max(mx, scores[s] *= a.scale);
    float sum = 0;
    for (int s = 0; s < n_keys; ++s) sum += (scores[s] = std::exp(scores[s] - mx));
    float* o = a.out + t * q_stride + int64_t(h) * D;
    std::fill(o, o + D, 0.0f);
    for (int s = 0; s < n_keys; ++s) {
      const float p = scores[s] / sum;
      const int64_t base = s * kv_stride + kv_off;
      if (a.kv_dtype == DType::kF32) {
        const float* v = static_cast<const float*>(a.v_cache) + base;
        for (int d = 0; d < D; ++d) o[d] += p * v[d];
      } else {
        for (int d = 0; d < D; ++d) o[d] += p * load_kv(a.v_cache, a.kv_dtype, base + d);
      }
    }
  });
}

void CpuBackend::moe_while(const MoeArgs& a, const std::function<void()>& caller_work) {
  moe_rows_.resize(size_t(a.n_experts));
  moe_w_.resize(size_t(a.n_experts));
  for (int e = 0; e < a.n_experts; ++e) moe_rows_[e].clear(), moe_w_[e].clear();
  for (int t = 0; t < a.T; ++t)
    for (int j = 0; j < a.k; ++j) {
      const int e = a.ids[int64_t(t) * a.k + j];
      if (e < 0 || e >= a.n_experts)
        fail(ErrorKind::kInvalidArgument, "moe: expert id {} outside [0, {})", e, a.n_experts);
      if (!a.table[e].present()) continue;
      moe_rows_[e].push_back(t);
      moe_w_[e].push_back(a.weights[int64_t(t) * a.k + j]);
    }
  moe_tasks_.clear();
  for (int e = 0; e < a.n_experts; ++e)
    if (!moe_rows_[e].empty())
      moe_tasks_.push_back(
          {a.table[e], moe_rows_[e].data(), moe_w_[e].data(), int(moe_rows_[e].size())});
  CpuMoeArgs args;
  args.x = a.x;
  args.out = a.out;
  args.T = a.T;
  args.hidden = a.hidden;
  args.accumulate = a.accumulate;
  moe_.run(args, moe_tasks_.data(), int(moe_tasks_.size()), *pool_,
           caller_work ? &caller_work : nullptr);
}

}  // namespace

ThreadPoolOptions pool_options(const CpuBackendOptions& o) {
  ThreadPoolOptions po;
  po.threads = o.threads;
  po.cores = o.cores;
  po.numa_node = o.numa_node;
  po.spin_us = o.spin_us;
  return po;
}

std::unique_ptr<Backend> make_cpu_backend(const CpuBackendOptions& options) {
  return std::make_unique<CpuBackend>(options);
}

}  // namespace cs
