// The op interface: every computation of a forward pass goes through a Backend.
//
// The CPU reference backend (kernels/cpu/) is the ground truth; the CUDA backend
// (kernels/cuda/) implements the same ops and is tested against it. Backends know nothing
// about models, files or configuration: they see pointers, sizes and weight views.
//
// Conventions:
// - Activations are F32, row-major, one row per token.
// - Every pointer passed to an op is a "backend pointer": host memory for a host backend,
//   device memory for CUDA. Make them with alloc() and fill them with upload().
// - Ops are enqueued in order; results are visible to the host after synchronize() (a no-op on
//   the CPU). Ops report bad arguments by throwing cs::Error naming the op.
//
// Thread-safety: a Backend is used by one thread at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "kernels/types.h"

namespace cs {

class Backend;

// Memory owned by a backend. Move-only; frees itself on destruction.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend* owner, void* ptr, size_t bytes) : owner_(owner), ptr_(ptr), bytes_(bytes) {}
  ~Buffer();
  Buffer(Buffer&& o) noexcept
      : owner_(std::exchange(o.owner_, nullptr)),
        ptr_(std::exchange(o.ptr_, nullptr)),
        bytes_(std::exchange(o.bytes_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* get() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  Backend* owner_ = nullptr;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Rotary position embedding, precomputed by the model: inv_freq holds D/2 frequencies
// (YaRN already folded in) and attn_factor multiplies both cos and sin.
struct RopeArgs {
  const float* inv_freq = nullptr;  // [D/2], backend pointer
  float attn_factor = 1.0f;
  // When set, the first position is read from this backend pointer instead of the pos0 argument,
  // so a captured decode step (CUDA graph) replays unchanged while the position advances.
  const int32_t* pos = nullptr;
};

// Causal attention of T query rows at positions pos0 .. pos0+T-1 over keys 0 .. pos0+T-1.
struct AttentionArgs {
  const float* q = nullptr;       // [T][Q*D]
  const void* k_cache = nullptr;  // [ctx][KV*D] of kv_dtype, this layer
  const void* v_cache = nullptr;  // [ctx][KV*D]
  DType kv_dtype = DType::kF32;   // F32, F16 or BF16
  int T = 0, pos0 = 0;
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  float scale = 1.0f;    // usually 1/sqrt(D)
  float* out = nullptr;  // [T][Q*D]
  // When set, pos0 is read from this backend pointer (see RopeArgs::pos); `capacity` (rows of the
  // caches) then bounds the keys a kernel may be launched for.
  const int32_t* pos = nullptr;
  int capacity = 0;
};

// The attention prologue's inputs beside AttentionArgs (see Backend::qk_attention): the new k and
// v rows, the per-head norm weights of q and k (empty: no norm) and RoPE.
struct QkPrologue {
  float* k = nullptr;        // [T][KV*D]
  const float* v = nullptr;  // [T][KV*D]
  MatView q_norm, k_norm;
  float eps = 1e-6f;
  RopeArgs rope;
};

// Token sampling from one row of logits; the exact rule is ref::sample (kernels/cpu/ref_ops.h):
// greedy = argmax (lowest index on ties); otherwise the top_k most likely tokens (0 = all),
// softmax at `temperature`, min-p relative to the most likely, then top-p, then a draw with the
// caller's uniform number u in [0, 1) walking the candidates from the most likely down.
struct SampleArgs {
  bool greedy = false;  // also when temperature <= 0
  float temperature = 1.0f;
  int top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
};

// Mixture-of-experts feed-forward:
//   out[t] (+)= sum_j weights[t][j] * FFN_{ids[t][j]}(x[t])  for every j whose expert is present
// in `table`. Experts absent from the table (gate.data == nullptr) are skipped: the offload
// engine computes them elsewhere and adds their share.
struct MoeArgs {
  const float* x = nullptr;  // [T][H]
  int T = 0, hidden = 0;
  const int32_t* ids = nullptr;    // [T][K]
  const float* weights = nullptr;  // [T][K]
  int k = 0;
  const ExpertWeights* table = nullptr;  // [n_experts], an array in backend-visible memory
  int n_experts = 0;
  // The format every expert of the table shares (a backend picks its kernels by it without
  // reading the table): weight dtype and intermediate size I.
  DType dtype = DType::kF32;
  int inter = 0;
  float* out = nullptr;     // [T][H]
  bool accumulate = false;  // add to out instead of overwriting it
};

// A recorded sequence of ops (a CUDA graph), replayed by Backend::replay. Move-only handle.
class Graph {
 public:
  virtual ~Graph() = default;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // True when backend pointers are ordinary host memory.
  virtual bool host_memory() const = 0;

  // ---- memory ----
  virtual Buffer alloc(size_t bytes) = 0;
  // host -> backend, in stream order. From page-locked host memory the copy may still be
  // pending when this returns: `src` must stay unchanged until the next synchronize() or
  // download() (from ordinary memory the bytes are taken before it returns).
  virtual void upload(void* dst, const void* src, size_t bytes) = 0;
  virtual void download(void* dst, const void* src, size_t bytes) = 0;  // backend -> host
  // Enqueues a backend -> host copy in stream order; `dst` holds the bytes after the next
  // synchronize() or download(). Asynchronous only into page-locked host memory (elsewhere it
  // completes before returning, like download()). Lets several small downloads share one
  // synchronization.
  virtual void download_async(void* dst, const void* src, size_t bytes) {
    download(dst, src, bytes);
  }
  virtual void synchronize() = 0;
  // The queue ops are enqueued on (a cudaStream_t for CUDA), so other engines can order their
  // work against it (the offload copy engine); null where ops complete before they return.
  virtual void* native_stream() { return nullptr; }
  // Device memory accounting: bytes allocated now and the budget alloc() enforces (0: none).
  virtual size_t memory_used() const { return 0; }
  virtual size_t memory_budget() const { return 0; }

  // ---- timing ----
  // A mark on the queue's timeline: complete once every op enqueued before it is. 0: no mark (the
  // queue is being captured). The default suits backends whose ops complete before they return:
  // the host clock now. A backend with an asynchronous queue overrides both.
  virtual uint64_t mark() {
    return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count());
  }
  // Seconds between two complete marks (after synchronize()); negative when unknown.
  virtual double mark_seconds(uint64_t from, uint64_t to) {
    return from && to >= from ? double(to - from) * 1e-9 : -1.0;
  }

  // ---- graphs ----
  // Ops enqueued between capture_begin() and capture_end() are recorded, not run; replay() runs
  // them again. Only backends with supports_graphs() capture; no upload/download in between.
  virtual bool supports_graphs() const { return false; }
  virtual void capture_begin() {}
  virtual std::unique_ptr<Graph> capture_end() { return nullptr; }
  virtual void replay(Graph& graph) {}

  // ---- ops ----
  // out[t] = row ids[t] of table. REQUIRES: 0 <= ids[t] < table.rows (checked by the caller).
  virtual void embed(const MatView& table, const int32_t* ids, int T, float* out) = 0;
  // out[t] = x[t] / rms(x[t]) * w, in fp32. `residual`, when not null, is added to x first and
  // the sum is written back to x (fused residual add).
  virtual void rmsnorm(float* x, const float* residual, const MatView& w, float eps, int T, int dim,
                       float* out) = 0;
  // x[i] += y[i]
  virtual void add(float* x, const float* y, int64_t n) = 0;
  // out[T][N] = x[T][C] * W^T
  virtual void matmul(const float* x, int T, const MatView& w, float* out) = 0;
  // out[i] = x * w[i]^T for n weights of the same x (q, k and v): a backend may prepare x once.
  virtual void matmuls(const float* x, int T, const MatView* const* w, float* const* out, int n) {
    for (int i = 0; i < n; ++i) matmul(x, T, *w[i], out[i]);
  }
  // In place on x [T][heads][D]: optional per-head RMSNorm with weight `norm` ([D]; skipped when
  // norm.empty()), then rotate-half RoPE (dim j pairs with j + D/2) at positions pos0 + t.
  virtual void norm_rope(float* x, int T, int heads, int head_dim, const MatView& norm, float eps,
                         int pos0, const RopeArgs& rope) = 0;
  // Writes k, v [T][KV*D] into rows pos0 .. pos0+T-1 of the caches, converting to kv_dtype.
  // `pos`, when set, overrides pos0 from backend memory (see RopeArgs::pos).
  virtual void kv_store(const float* k, const float* v, int T, int pos0, int kv_dim, DType kv_dtype,
                        void* k_cache, void* v_cache, const int32_t* pos = nullptr) = 0;
  // A layer's attention prologue in one call: norm_rope of q [T][Q][D] and of k [T][KV][D] (each
  // with its own norm weight), then kv_store of k and v. Backends may fuse it; the default runs
  // the three ops.
  virtual void qk_norm_rope_store(float* q, float* k, const float* v, int T, int n_heads,
                                  int n_kv_heads, int head_dim, const MatView& q_norm,
                                  const MatView& k_norm, float eps, int pos0, const RopeArgs& rope,
                                  DType kv_dtype, void* k_cache, void* v_cache) {
    norm_rope(q, T, n_heads, head_dim, q_norm, eps, pos0, rope);
    norm_rope(k, T, n_kv_heads, head_dim, k_norm, eps, pos0, rope);
    kv_store(k, v, T, pos0, n_kv_heads * head_dim, kv_dtype, k_cache, v_cache, rope.pos);
  }
  virtual void attention(const AttentionArgs& a) = 0;
  // qk_norm_rope_store of a.q, p.k and p.v into a's caches, then attention(a): a layer's attention
  // from its q/k/v projections. Backends may fuse the two (CUDA at T = 1); a fused backend need
  // not write the rotated q and k back to a.q and p.k, only the cache rows and a.out.
  virtual void qk_attention(const AttentionArgs& a, const QkPrologue& p) {
    // The prologue writes what attention then reads: a.q and the caches' rows of the new tokens.
    qk_norm_rope_store(const_cast<float*>(a.q), p.k, p.v, a.T, a.n_heads, a.n_kv_heads, a.head_dim,
                       p.q_norm, p.k_norm, p.eps, a.pos0, p.rope, a.kv_dtype,
                       const_cast<void*>(a.k_cache), const_cast<void*>(a.v_cache));
    attention(a);
  }
  // Router: softmax over E logits in fp32, top-k (ties to the lower index), optionally
  // renormalised so the k weights sum to 1. ids/weights are [T][k].
  virtual void router(const float* logits, int T, int n_experts, int k, bool renormalize,
                      int32_t* ids, float* weights) = 0;
  // The router from the MoE input: logits [T][E] = x w^T (E = w.rows, kept in `logits`), then
  // router(). Backends may fuse the product and the selection; the default runs matmul and router.
  virtual void route(const float* x, int T, const MatView& w, int k, bool renormalize,
                     float* logits, int32_t* ids, float* weights) {
    matmul(x, T, w, logits);
    router(logits, T, int(w.rows), k, renormalize, ids, weights);
  }
  virtual void moe(const MoeArgs& a) = 0;
  // moe(a), and meanwhile caller_work() on the calling thread: a backend with worker threads
  // starts them on the experts first, then runs it and joins them; the default runs it, then
  // moe(a). The hybrid offload path queues its GPU kernels there while the CPU computes. The CPU
  // backend rejects bad inputs before caller_work runs; the default has run it by then.
  virtual void moe_while(const MoeArgs& a, const std::function<void()>& caller_work) {
    caller_work();
    moe(a);
  }
  // Draws one token from logits [V] into *token (backend pointers; u is a backend pointer to one
  // float so a captured graph takes a fresh number each replay). See SampleArgs.
  virtual void sample(const float* logits, int V, const SampleArgs& s, const float* u,
                      int32_t* token) = 0;
  // Whether sample() handles these arguments (the CUDA backend: greedy or 1 <= top_k <= 1024).
  virtual bool supports_sampling(const SampleArgs& s) const { return true; }

 protected:
  friend class Buffer;
  virtual void free(void* ptr) = 0;
};

// The CPU reference backend: plain FP32 loops, the ground truth for every other backend.
std::unique_ptr<Backend> make_cpu_reference_backend();
// The CUDA backend: kernels/cuda_backend.h.

class ThreadPool;

struct CpuBackendOptions {
  int threads = 0;                   // 0: one per physical core (performance cores on hybrid CPUs)
  std::vector<int> cores;            // logical CPUs to run on; empty: chosen with hwloc
  int numa_node = -1;                // with `cores` empty: only this NUMA node's cores; -1: all
  CpuIsa isa = CpuIsa::kAuto;        // force a lower instruction set (tests, comparisons)
  int spin_us = 200;                 // idle threads spin this long for the next op before sleeping
  int prefetch = kCpuPrefetchBytes;  // software prefetch distance of the Q4/Q8 kernels (0: off)
  ThreadPool* pool =
      nullptr;  // share this pool (it must outlive the backend) instead of owning one
};

struct ThreadPoolOptions;
// The thread pool a CPU backend with these options owns (threads, cores, NUMA node, spinning).
ThreadPoolOptions pool_options(const CpuBackendOptions& options);

// The fast CPU backend: SIMD kernels chosen at run time (kernels/cpu/simd.h) on a thread pool.
// Quantized weights (Q4, Q8) are read in place with int8-quantized activations (per block of 32),
// so results differ from the reference by that quantization (see docs/TESTING.md); F32/F16/BF16
// weights are computed in fp32. Throws cs::Error if `isa` is not supported by this CPU.
std::unique_ptr<Backend> make_cpu_backend(const CpuBackendOptions& options = {});

}  // namespace cs
