#include "runtime/engine/transformer.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "runtime/engine/placement.h"

namespace cs {
namespace {

size_t kv_elem_bytes(DType t) {
  return t == DType::kF32 ? 4 : 2;
}

}  // namespace

Transformer::Transformer(const Model& model, Backend& backend, MoeExecutor* moe,
                         TransformerOptions options)
    : model_(model), backend_(backend), moe_(moe) {
  const ModelConfig& c = model.config();
  n_ctx_ = options.n_ctx > 0 ? options.n_ctx : std::min(c.max_position_embeddings, 4096);
  max_T_ = std::max(1, std::min(options.max_batch, n_ctx_));
  kv_dtype_ = options.kv_dtype;
  if (kv_dtype_ != DType::kF32 && kv_dtype_ != DType::kF16 && kv_dtype_ != DType::kBF16)
    fail(ErrorKind::kInvalidArgument, "kv cache dtype must be F32, F16 or BF16, got {}",
         dtype_name(kv_dtype_));

  // Non-expert weights on the backend.
  const ModelWeights& hw = model.weights();
  w_.embed = place_on(backend, hw.embed, storage_);
  w_.final_norm = place_on(backend, hw.final_norm, storage_);
  w_.lm_head =
      hw.lm_head.data == hw.embed.data ? w_.embed : place_on(backend, hw.lm_head, storage_);
  std::vector<bool> moe_layers(static_cast<size_t>(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& s = hw.layers[l];
    LayerWeights d;
    for (auto [dst, src] : {std::pair{&d.attn_norm, &s.attn_norm},
                            {&d.wq, &s.wq},
                            {&d.wk, &s.wk},
                            {&d.wv, &s.wv},
                            {&d.wo, &s.wo},
                            {&d.q_norm, &s.q_norm},
                            {&d.k_norm, &s.k_norm},
                            {&d.ffn_norm, &s.ffn_norm},
                            {&d.router, &s.router}})
      *dst = place_on(backend, *src, storage_);
    d.dense = place_on(backend, s.dense, storage_);
    w_.layers.push_back(d);
    moe_layers[l] = c.is_moe_layer(l);
  }
  if (!moe_) {
    owned_moe_ = std::make_unique<ResidentMoeExecutor>(backend, model.experts(), c.hidden_size,
                                                       c.n_experts_per_tok, moe_layers);
    moe_ = owned_moe_.get();
  }

  // KV cache for the whole context, allocated up front.
  const size_t kv_bytes = size_t(n_ctx_) * c.kv_dim() * kv_elem_bytes(kv_dtype_);
  for (int l = 0; l < c.n_layers; ++l) {
    k_cache_.push_back(backend.alloc(kv_bytes));
    v_cache_.push_back(backend.alloc(kv_bytes));
  }
  std::vector<float> inv = rope_inv_freq(c, &attn_factor_);
  inv_freq_ = backend.alloc(inv.size() * 4);
  backend.upload(inv_freq_.get(), inv.data(), inv.size() * 4);

  const size_t T = size_t(max_T_), H = c.hidden_size, K = std::max(1, c.n_experts_per_tok);
  ids_ = backend.alloc(T * 4);
  x_ = backend.alloc(T * H * 4);
  h_ = backend.alloc(T * H * 4);
  q_ = backend.alloc(T * c.q_dim() * 4);
  k_ = backend.alloc(T * c.kv_dim() * 4);
  v_ = backend.alloc(T * c.kv_dim() * 4);
  att_ = backend.alloc(T * c.q_dim() * 4);
  o_ = backend.alloc(T * H * 4);
  ffn_ = backend.alloc(T * H * 4);
  router_logits_ = backend.alloc(T * std::max(1, c.n_experts) * 4);
  sel_ids_ = backend.alloc(T * K * 4);
  sel_w_ = backend.alloc(T * K * 4);
  logits_ = backend.alloc(T * size_t(c.vocab_size) * 4);

  // Dense MLP layers run as a one-expert MoE with weight 1 for every token.
  std::vector<int32_t> zeros(T, 0);
  std::vector<float> ones(T, 1.0f);
  dense_ids_ = backend.alloc(T * 4);
  dense_w_ = backend.alloc(T * 4);
  backend.upload(dense_ids_.get(), zeros.data(), T * 4);
  backend.upload(dense_w_.get(), ones.data(), T * 4);
  dense_tables_.resize(size_t(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    if (moe_layers[l]) continue;
    dense_tables_[l] = backend.alloc(sizeof(ExpertWeights));
    backend.upload(dense_tables_[l].get(), &w_.layers[l].dense, sizeof(ExpertWeights));
  }
}

Transformer::~Transformer() = default;

void Transformer::forward(std::span<const int32_t> ids, int pos0, bool all_logits,
                          std::vector<float>& logits) {
  const ModelConfig& c = model_.config();
  const int n = int(ids.size());
  if (n == 0) fail(ErrorKind::kInvalidArgument, "forward: no tokens given");
  for (int i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= c.vocab_size)
      fail(ErrorKind::kInvalidArgument,
           "token id {} at position {} is outside the vocabulary (0 .. {})", ids[i], pos0 + i,
           c.vocab_size - 1);
  if (pos0 < 0 || int64_t(pos0) + n > n_ctx_)
    fail(ErrorKind::kInvalidArgument,
         "sequence of {} tokens (positions {} .. {}) is longer than the context of {} tokens",
         pos0 + n, pos0, pos0 + n - 1, n_ctx_);
  const size_t V = size_t(c.vocab_size);
  logits.assign((all_logits ? size_t(n) : 1) * V, 0.0f);
  for (int start = 0; start < n; start += max_T_) {
    const int T = std::min(max_T_, n - start);
    const bool last_chunk = start + T == n;
    float* dst =
        all_logits ? logits.data() + size_t(start) * V : (last_chunk ? logits.data() : nullptr);
    run_chunk(ids.data() + start, T, pos0 + start, all_logits, dst);
  }
}

void Transformer::run_chunk(const int32_t* ids, int T, int pos0, bool all_logits,
                            float* logits_out) {
  const ModelConfig& c = model_.config();
  Backend& b = backend_;
  const int H = c.hidden_size, D = c.head_dim, K = c.n_experts_per_tok;
  float *x = x_.as<float>(), *h = h_.as<float>(), *ffn = ffn_.as<float>();
  b.upload(ids_.get(), ids, size_t(T) * 4);
  b.embed(w_.embed, ids_.as<int32_t>(), T, x);
  const RopeArgs rope{inv_freq_.as<float>(), attn_factor_};
  std::vector<int32_t> host_ids;
  std::vector<float> host_w;
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = w_.layers[l];
    // x += previous layer's FFN output, h = norm(x)
    b.rmsnorm(x, l == 0 ? nullptr : ffn, L.attn_norm, c.rms_norm_eps, T, H, h);
    b.matmul(h, T, L.wq, q_.as<float>());
    b.matmul(h, T, L.wk, k_.as<float>());
    b.matmul(h, T, L.wv, v_.as<float>());
    b.norm_rope(q_.as<float>(), T, c.n_heads, D, L.q_norm, c.rms_norm_eps, pos0, rope);
    b.norm_rope(k_.as<float>(), T, c.n_kv_heads, D, L.k_norm, c.rms_norm_eps, pos0, rope);
    b.kv_store(k_.as<float>(), v_.as<float>(), T, pos0, c.kv_dim(), kv_dtype_, k_cache_[l].get(),
               v_cache_[l].get());
    AttentionArgs a;
    a.q = q_.as<float>();
    a.k_cache = k_cache_[l].get();
    a.v_cache = v_cache_[l].get();
    a.kv_dtype = kv_dtype_;
    a.T = T;
    a.pos0 = pos0;
    a.n_heads = c.n_heads;
    a.n_kv_heads = c.n_kv_heads;
    a.head_dim = D;
    a.scale = 1.0f / std::sqrt(float(D));
    a.out = att_.as<float>();
    b.attention(a);
    b.matmul(att_.as<float>(), T, L.wo, o_.as<float>());
    // x += attention output, h = norm(x)
    b.rmsnorm(x, o_.as<float>(), L.ffn_norm, c.rms_norm_eps, T, H, h);
    if (c.is_moe_layer(l)) {
      b.matmul(h, T, L.router, router_logits_.as<float>());
      b.router(router_logits_.as<float>(), T, c.n_experts, K, c.norm_topk_prob,
               sel_ids_.as<int32_t>(), sel_w_.as<float>());
      if (observer_) {
        host_ids.resize(size_t(T) * K);
        host_w.resize(size_t(T) * K);
        b.download(host_ids.data(), sel_ids_.get(), host_ids.size() * 4);
        b.download(host_w.data(), sel_w_.get(), host_w.size() * 4);
        observer_(l, T, host_ids.data(), host_w.data());
      }
      moe_->forward(l, h, T, sel_ids_.as<int32_t>(), sel_w_.as<float>(), ffn);
    } else {
      MoeArgs m;
      m.x = h;
      m.T = T;
      m.hidden = H;
      m.ids = dense_ids_.as<int32_t>();
      m.weights = dense_w_.as<float>();
      m.k = 1;
      m.table = dense_tables_[l].as<const ExpertWeights>();
      m.n_experts = 1;
      m.out = ffn;
      b.moe(m);
    }
  }
  if (!logits_out) return;
  b.rmsnorm(x, ffn, w_.final_norm, c.rms_norm_eps, T, H, h);
  const int rows = all_logits ? T : 1;
  const float* last = all_logits ? h : h + int64_t(T - 1) * H;
  b.matmul(last, rows, w_.lm_head, logits_.as<float>());
  b.download(logits_out, logits_.get(), size_t(rows) * c.vocab_size * 4);
  b.synchronize();
}

}  // namespace cs
