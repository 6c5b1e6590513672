// The forward pass of a decoder-only MoE transformer (Qwen3-MoE, Mixtral), written once
// against the Backend op interface and the MoeExecutor. It owns the KV cache and scratch.
//
// Thread-safety: one thread at a time.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "kernels/backend.h"
#include "runtime/engine/moe_executor.h"
#include "runtime/model/model.h"

namespace cs {

struct TransformerOptions {
  int n_ctx = 0;                 // KV cache length; 0 = min(max_position_embeddings, 4096)
  DType kv_dtype = DType::kF32;  // F32, F16 or BF16
  int max_batch = 256;           // tokens per internal prefill chunk
};

// Called after each MoE layer's router with host copies of ids/weights [T][K] (tests, tracing).
using RoutingObserver =
    std::function<void(int layer, int T, const int32_t* ids, const float* weights)>;

class Transformer {
 public:
  // `moe` may be null: then every expert runs resident on `backend`.
  Transformer(const Model& model, Backend& backend, MoeExecutor* moe, TransformerOptions options);
  ~Transformer();

  int n_ctx() const { return n_ctx_; }
  const ModelConfig& config() const { return model_.config(); }

  // Runs `ids` at positions pos0 .. pos0 + n - 1 (the cache must hold 0 .. pos0 - 1). Writes the
  // logits of every position (all_logits) or of the last one into `logits` ([rows][V], host).
  // Throws cs::Error for a token outside the vocabulary or a sequence longer than the context.
  void forward(std::span<const int32_t> ids, int pos0, bool all_logits, std::vector<float>& logits);

  void set_routing_observer(RoutingObserver obs) { observer_ = std::move(obs); }

 private:
  void run_chunk(const int32_t* ids, int T, int pos0, bool all_logits, float* logits_out);

  const Model& model_;
  Backend& backend_;
  MoeExecutor* moe_;
  std::unique_ptr<MoeExecutor> owned_moe_;
  int n_ctx_;
  int max_T_;
  DType kv_dtype_;
  ModelWeights w_;               // views valid on backend_
  std::vector<Buffer> storage_;  // uploaded weights (non-host backends)
  std::vector<Buffer> k_cache_, v_cache_;
  Buffer inv_freq_;
  float attn_factor_ = 1.0f;
  Buffer ids_, x_, h_, q_, k_, v_, att_, o_, ffn_, router_logits_, sel_ids_, sel_w_, logits_;
  Buffer dense_ids_, dense_w_;  // constant routing for dense MLP layers (one "expert")
  std::vector<Buffer> dense_tables_;
  RoutingObserver observer_;
};

}  // namespace cs
