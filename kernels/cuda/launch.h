// CUDA kernel launchers: raw pointers, sizes and a stream in, a cudaError_t out. They never exit
// and never throw; CudaBackend (cuda_backend.cpp) turns errors into cs::Error naming the op.
// Pointers are device memory; MatView and ExpertWeights hold device pointers.
//
// Dimension letters as in kernels/types.h: T tokens, H hidden, I intermediate, K routed experts
// per token, N/C output/input features, Q/KV heads, D head dimension, V vocabulary.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/backend.h"

namespace cs::cuda {

// ---- elementwise (ops_basic.cu) ----
cudaError_t embed(const MatView& table, const int32_t* ids, int T, float* out, cudaStream_t s);
cudaError_t rmsnorm(float* x, const float* residual, const MatView& w, float eps, int T, int dim,
                    float* out, cudaStream_t s);
cudaError_t add(float* x, const float* y, int64_t n, cudaStream_t s);
cudaError_t norm_rope(float* x, int T, int heads, int head_dim, const MatView& norm, float eps,
                      int pos0, const RopeArgs& rope, cudaStream_t s);
cudaError_t kv_store(const float* k, const float* v, int T, int pos0, int kv_dim, DType kv_dtype,
                     void* k_cache, void* v_cache, const int32_t* pos, cudaStream_t s);
// norm_rope of q and k, then the cache store of k and v (Backend::qk_norm_rope_store), one launch.
cudaError_t qk_norm_rope_store(float* q, float* k, const float* v, int T, int n_heads,
                               int n_kv_heads, int head_dim, const MatView& q_norm,
                               const MatView& k_norm, float eps, int pos0, const RopeArgs& rope,
                               DType kv_dtype, void* k_cache, void* v_cache, cudaStream_t s);
// out[n] = x[n] converted to `to` (F16 or BF16).
cudaError_t convert(const float* x, int64_t n, DType to, void* out, cudaStream_t s);
// out [N][C] = w as `to` (F16 or BF16), any weight dtype.
cudaError_t dequantize(const MatView& w, DType to, void* out, cudaStream_t s);

// ---- attention (attention.cu, flash_attention.cu) ----
// Split-K attention for any T (the decode path): workspace of attention_workspace_floats().
size_t attention_workspace_floats(const AttentionArgs& a, int sm_count);
// With `pro` (attention_prologue_fused_ok: T = 1, head_dim 128, 16-bit 16-byte aligned caches), q
// is the q projection and the kernel does qk_norm_rope_store's work itself: the rotated q stays on
// chip, the new k/v rows go to the caches.
bool attention_prologue_fused_ok(const AttentionArgs& a);
cudaError_t attention_split(const AttentionArgs& a, float* workspace, int sm_count, cudaStream_t s,
                            const QkPrologue* pro = nullptr);
// Tensor-core flash attention for prefill: F16/BF16 caches, D of 64 or 128, pos from the host.
bool flash_attention_supported(const AttentionArgs& a);
cudaError_t flash_attention(const AttentionArgs& a, cudaStream_t s);

// ---- GEMV (gemv.cu): weights read once per token, every dtype ----
// Largest C the GEMV kernels take (x is staged in shared memory).
int gemv_max_cols();
// Whether gemv takes w: at most gemv_max_cols() columns and under 32 GiB of weights.
bool gemv_fits(const MatView& w);
cudaError_t gemv_init();  // raises the shared-memory limit of the GEMV kernels; call once
// out[t][N] = W x[t] for t < T (T small: weights are re-read per token).
cudaError_t gemv(const MatView& w, const float* x, int T, float* out, cudaStream_t s);

// ---- mixture of experts (gemv.cu, moe.cu) ----
// Scratch for moe_gemv: act [T*K][I] and y [T*K][H] floats.
size_t moe_gemv_workspace_floats(int T, int K, int inter, int hidden);
// One launch for gate+up+SiLU of every (token, expert) pair, one for down, one to combine.
cudaError_t moe_gemv(const MoeArgs& a, float* workspace, cudaStream_t s);
// Internal pieces of moe_gemv (moe_down.cu): down projection and weighted sum in one launch.
cudaError_t moe_down_init();
bool moe_down_fused_ok(const MoeArgs& a);
cudaError_t moe_down_fused(const MoeArgs& a, const float* act, cudaStream_t s);
// Grouped INT4 GEMM for prefill (Q4 experts): tokens sorted by expert, tensor cores.
size_t moe_grouped_workspace_bytes(int T, int K, int n_experts, int inter, int hidden);
bool moe_grouped_supported(const MoeArgs& a);
cudaError_t moe_grouped(const MoeArgs& a, void* workspace, cudaStream_t s);

// ---- router (router.cu) ----
cudaError_t router(const float* logits, int T, int n_experts, int k, bool renormalize, int32_t* ids,
                   float* weights, cudaStream_t s);
// Backend::route in one launch: logits [T][E] = x W^T, then router(). For decode: T <= 4, T x E <=
// 4096, F32/F16/BF16 weights, 16-byte aligned w and x. `counter` is a device unsigned that is zero
// before the launch and is left at zero.
bool route_fused_ok(const MatView& w, const float* x, int T, int k);
cudaError_t route_fused(const float* x, int T, const MatView& w, int k, bool renormalize,
                        float* logits, int32_t* ids, float* weights, unsigned* counter,
                        cudaStream_t s);

// ---- sampling (sample.cu) ----
bool sample_supported(const SampleArgs& a);
// scratch: kSampleScratchBytes of device memory, zero before the first call (left at zero).
inline constexpr size_t kSampleScratchBytes = 16;
cudaError_t sample(const float* logits, int V, const SampleArgs& a, const float* u, int32_t* token,
                   void* scratch, cudaStream_t s);

// ---- micro-benchmark helpers (bench, fill.cu) ----
// Random Q4 codes 1..15 in every nibble (zero-mean weights), and uniform values in [lo, hi) of
// dtype F32, F16 or BF16.
cudaError_t fill_q4_codes(void* p, size_t bytes, uint64_t seed, cudaStream_t s);
cudaError_t fill_uniform(void* p, DType dt, size_t n, float lo, float hi, uint64_t seed,
                         cudaStream_t s);
// Device-to-device copy of `bytes` with a plain kernel (16-byte loads and stores).
cudaError_t copy_kernel(const void* src, void* dst, size_t bytes, cudaStream_t s);
// Read probes (read_probe.cu): read `bytes` (a multiple of 16) of src with `blocks` blocks of
// `warps` warps, `loads` (1, 4 or 16) independent 16-byte loads per thread in flight; or with
// bulk copies through `stages` shared-memory buffers of `chunk` bytes per block, after
// read_probe_tma_init (once per device: cudaErrorNotSupported before sm_90; raises the kernel's
// shared-memory limit, outside the timed launches). sink: a device unsigned the kernels may write.
cudaError_t read_probe_ldg(const void* src, size_t bytes, int blocks, int warps, int loads,
                           unsigned* sink, cudaStream_t s);
cudaError_t read_probe_tma_init();
cudaError_t read_probe_tma(const void* src, size_t bytes, int blocks, int stages, int chunk,
                           unsigned* sink, cudaStream_t s);

}  // namespace cs::cuda
