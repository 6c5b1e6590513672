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
  // Rows of the device logits buffer ([rows][vocab] F32); 0 = max_batch. forward() with
  // all_logits runs lm_head over a chunk in blocks of this many rows. 1 frees
  // (max_batch - 1) x vocab x 4 bytes (148 MiB for Qwen3 at 256 tokens) for expert slots.
  int logits_rows = 0;
  // Decode steps (one token) replay a captured graph on backends that support graphs, when every
  // expert is resident and no routing observer is set.
  bool graphs = true;
  // The token-embedding table stays in host memory on a GPU backend: each chunk's rows are
  // gathered on the host and uploaded (16 KiB per token at hidden 4096), which leaves the
  // table's VRAM (1.2 GiB for Qwen3 in BF16) to expert slots. Auto: on when an offload executor
  // is given (`moe` not null). Never when lm_head shares the table.
  enum class HostEmbeddings { kAuto, kOn, kOff };
  HostEmbeddings host_embeddings = HostEmbeddings::kAuto;
};

// What a Transformer places on its backend, in bytes: checked against the backend's budget before
// anything is allocated, and used by SessionRuntime to decide, before building anything, whether
// a model fits a GPU resident.
struct Footprint {
  size_t dense = 0;    // non-expert weights copied to the backend (0 in host memory)
  size_t experts = 0;  // experts copied to the backend (0 with an offload executor)
  size_t kv = 0;       // the KV cache
  size_t act = 0;      // activations and logits
  int n_ctx = 0, max_batch = 0, logits_rows = 0;  // as the Transformer resolves them
  size_t total() const { return dense + experts + kv + act; }
};
// `device_memory`: weights are copied (a GPU backend); `host_embed`: the embedding table stays in
// host memory; `resident_experts`: no offload executor.
Footprint transformer_footprint(const Model& model, const TransformerOptions& options,
                                bool device_memory, bool host_embed, bool resident_experts);

// Called after each MoE layer's router with host copies of ids/weights [T][K] (tests, tracing).
using RoutingObserver =
    std::function<void(int layer, int T, const int32_t* ids, const float* weights)>;

class Transformer {
 public:
  // `moe` may be null: then every expert runs resident on `backend`.
  Transformer(const Model& model, Backend& backend, MoeExecutor* moe, TransformerOptions options);
  ~Transformer();

  int n_ctx() const { return n_ctx_; }
  DType kv_dtype() const { return kv_dtype_; }
  const ModelConfig& config() const { return model_.config(); }

  // Runs `ids` at positions pos0 .. pos0 + n - 1 (the cache must hold 0 .. pos0 - 1). Writes the
  // logits of every position (all_logits) or of the last one into `logits` ([rows][V], host).
  // Throws cs::Error for a token outside the vocabulary or a sequence longer than the context.
  void forward(std::span<const int32_t> ids, int pos0, bool all_logits, std::vector<float>& logits);

  // Runs `ids` like forward(), then draws the next token on the backend from the last position's
  // logits with the uniform number u; only the token comes back to the host. A single token runs
  // as one decode step (a graph replay where possible). REQUIRES: can_sample(s).
  int32_t forward_sample(std::span<const int32_t> ids, int pos0, const SampleArgs& s, float u);
  // Draws again from the logits of the last forward() or forward_sample(). REQUIRES: one ran.
  int32_t sample_last(const SampleArgs& s, float u);
  bool can_sample(const SampleArgs& s) const { return backend_.supports_sampling(s); }
  // Host copy of the last position's logits of the last forward() or forward_sample().
  void last_logits(std::vector<float>& out);

  void set_routing_observer(RoutingObserver obs) { observer_ = std::move(obs); }
  // Whether decode steps may replay captured graphs (TransformerOptions::graphs).
  void set_graphs(bool on) {
    graphs_enabled_ = on;
    if (!on) graph_.reset();
  }
  // Bytes this transformer placed on its backend: weights, experts (resident), KV cache, scratch.
  size_t device_bytes() const { return device_bytes_; }
  // Whether the embedding table stayed in host memory (TransformerOptions::host_embeddings).
  bool host_embeddings() const { return host_embed_; }

 private:
  void check_tokens(std::span<const int32_t> ids, int pos0) const;
  // Puts a chunk's input where compute() reads it: the host-gathered embeddings into x_ (host
  // embeddings) or the token ids into ids_.
  void load_input(const int32_t* ids, int T);
  // Embeds ids_dev [T] (unless the rows were gathered on the host: load_input) and runs every layer
  // and, when want_logits, the final norm and lm_head into logits_ (every row or the last). `pos`,
  // when set, is the position in backend memory. With all_logits, `logits_out` (host, [T][V])
  // receives every row, block by block.
  void compute(const int32_t* ids_dev, int T, int pos0, const int32_t* pos, bool all_logits,
               bool want_logits, float* logits_out = nullptr);
  void run_chunk(const int32_t* ids, int T, int pos0, bool all_logits, float* logits_out);
  int32_t decode_step(int32_t token, int pos, const SampleArgs& s, float u);
  bool graphs_usable() const;

  const Model& model_;
  Backend& backend_;
  MoeExecutor* moe_;
  std::unique_ptr<MoeExecutor> owned_moe_;
  int n_ctx_;
  int max_T_;
  int logits_rows_;
  DType kv_dtype_;
  ModelWeights w_;  // views valid on backend_ (embed: host memory if host_embed_)
  bool host_embed_ = false;
  std::vector<float> host_x_;    // host-gathered embeddings of a chunk
  std::vector<MatView> wqkv_;    // per layer: q, k, v stacked (non-host backends), or empty
  std::vector<Buffer> storage_;  // uploaded weights (non-host backends)
  std::vector<Buffer> k_cache_, v_cache_;
  Buffer inv_freq_;
  float attn_factor_ = 1.0f;
  // qkv_: [T][Q*D] q, then [T][KV*D] k, then v (for T = 1: exactly the stacked projection).
  Buffer ids_, x_, h_, qkv_, att_, o_, ffn_, router_logits_, sel_ids_, sel_w_, logits_;
  // Decode-step inputs and output in backend memory: token, position, uniform number, sample.
  struct StepIO {
    int32_t token = 0;
    int32_t pos = 0;
    float u = 0;
    int32_t sampled = 0;
  };
  Buffer io_;
  int64_t last_row_ = -1;  // row of logits_ holding the last position's logits
  std::unique_ptr<Graph> graph_;
  SampleArgs graph_args_;
  bool graphs_enabled_ = true;
  int eager_steps_ = 0;
  size_t device_bytes_ = 0;
  Buffer dense_ids_, dense_w_;  // constant routing for dense MLP layers (one "expert")
  std::vector<Buffer> dense_tables_;
  RoutingObserver observer_;
};

}  // namespace cs
