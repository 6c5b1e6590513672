#include "runtime/engine/transformer.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "common/units.h"
#include "kernels/quant.h"
#include "runtime/engine/placement.h"

namespace cs {
namespace {

size_t kv_elem_bytes(DType t) {
  return t == DType::kF32 ? 4 : 2;
}

bool same_args(const SampleArgs& a, const SampleArgs& b) {
  return a.greedy == b.greedy && a.temperature == b.temperature && a.top_k == b.top_k &&
         a.top_p == b.top_p && a.min_p == b.min_p;
}

}  // namespace

Footprint transformer_footprint(const Model& model, const TransformerOptions& options,
                                bool device_memory, bool host_embed, bool resident_experts) {
  const ModelConfig& c = model.config();
  const ModelWeights& hw = model.weights();
  Footprint f;
  f.n_ctx = options.n_ctx > 0 ? options.n_ctx : std::min(c.max_position_embeddings, 4096);
  f.max_batch = std::max(1, std::min(options.max_batch, f.n_ctx));
  f.logits_rows =
      options.logits_rows > 0 ? std::min(options.logits_rows, f.max_batch) : f.max_batch;
  const size_t T = size_t(f.max_batch), H = c.hidden_size, K = std::max(1, c.n_experts_per_tok);
  f.kv = 2 * size_t(c.n_layers) * size_t(f.n_ctx) * c.kv_dim() * kv_elem_bytes(options.kv_dtype);
  f.act = 4 * (T * (3 * H + size_t(c.q_dim()) * 2 + 2 * size_t(c.kv_dim()) + H +
                    std::max<size_t>(1, c.n_experts) + 2 * K + 3) +
               size_t(f.logits_rows) * size_t(c.vocab_size) + size_t(c.head_dim));
  if (!device_memory) return f;
  f.dense = (host_embed ? 0 : placed_bytes(hw.embed)) + placed_bytes(hw.final_norm);
  if (hw.lm_head.data != hw.embed.data) f.dense += placed_bytes(hw.lm_head);
  for (const LayerWeights& s : hw.layers)
    for (const MatView* v : {&s.attn_norm, &s.wq, &s.wk, &s.wv, &s.wo, &s.q_norm, &s.k_norm,
                             &s.ffn_norm, &s.router, &s.dense.gate, &s.dense.up, &s.dense.down})
      f.dense += placed_bytes(*v);
  if (resident_experts)
    for (int l = 0; l < c.n_layers; ++l)
      if (c.is_moe_layer(l))
        for (int e = 0; e < model.experts().n_experts(); ++e)
          f.experts += placed_bytes(model.experts().host_view(l, e));
  return f;
}

Transformer::Transformer(const Model& model, Backend& backend, MoeExecutor* moe,
                         TransformerOptions options)
    : model_(model), backend_(backend), moe_(moe), graphs_enabled_(options.graphs) {
  const ModelConfig& c = model.config();
  kv_dtype_ = options.kv_dtype;
  if (kv_dtype_ != DType::kF32 && kv_dtype_ != DType::kF16 && kv_dtype_ != DType::kBF16)
    fail(ErrorKind::kInvalidArgument, "kv cache dtype must be F32, F16 or BF16, got {}",
         dtype_name(kv_dtype_));

  // What this transformer will place on the backend, checked against the backend's budget
  // before anything is allocated, so a budget too small names what needs how much.
  const ModelWeights& hw = model.weights();
  using HE = TransformerOptions::HostEmbeddings;
  host_embed_ = !backend.host_memory() && hw.lm_head.data != hw.embed.data &&
                (options.host_embeddings == HE::kOn ||
                 (options.host_embeddings == HE::kAuto && moe != nullptr));
  std::vector<bool> moe_layers(static_cast<size_t>(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) moe_layers[l] = c.is_moe_layer(l);
  // Against the budget before anything is allocated, so a budget too small to start names what
  // needs how much (weights in host memory are used in place: only the KV cache and scratch count).
  const Footprint f =
      transformer_footprint(model, options, !backend.host_memory(), host_embed_, moe_ == nullptr);
  n_ctx_ = f.n_ctx;
  max_T_ = f.max_batch;
  logits_rows_ = f.logits_rows;
  const size_t budget = backend.memory_budget();
  if (budget && backend.memory_used() + f.total() > budget)
    fail(ErrorKind::kOutOfMemory,
         "VRAM budget (device.vram_budget, --vram-budget) of {} is too small for this model "
         "on {}: non-expert weights need {}, {}the KV cache {} ({} tokens, {}), activations "
         "and logits {} ({} tokens per chunk); {} in all ({} already in use){}. Raise the "
         "budget or shorten the context{}",
         format_bytes(double(budget)), backend.name(), format_bytes(double(f.dense)),
         moe_ ? std::string() : fmt::format("experts {}, ", format_bytes(double(f.experts))),
         format_bytes(double(f.kv)), n_ctx_, dtype_name(kv_dtype_), format_bytes(double(f.act)),
         max_T_, format_bytes(double(f.total())), format_bytes(double(backend.memory_used())),
         moe_ ? ", before any expert slot of the offload engine" : "",
         moe_ ? "" : ", or offload experts");
  const size_t T = size_t(max_T_), H = c.hidden_size, K = std::max(1, c.n_experts_per_tok);
  const size_t kv_bytes = f.kv / (2 * size_t(c.n_layers));  // one layer's K (or V) cache
  const size_t used0 = backend.memory_used();

  // Non-expert weights on the backend; q, k and v stacked so a decode step reads them at once.
  w_.embed = host_embed_ ? hw.embed : place_on(backend, hw.embed, storage_);
  w_.final_norm = place_on(backend, hw.final_norm, storage_);
  w_.lm_head =
      hw.lm_head.data == hw.embed.data ? w_.embed : place_on(backend, hw.lm_head, storage_);
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& s = hw.layers[l];
    LayerWeights d = s;
    MatView qkv = place_stacked(backend, {&d.wq, &d.wk, &d.wv}, storage_);
    wqkv_.push_back(qkv);
    if (qkv.empty()) {
      d.wq = place_on(backend, s.wq, storage_);
      d.wk = place_on(backend, s.wk, storage_);
      d.wv = place_on(backend, s.wv, storage_);
    }
    for (auto [dst, src] : {std::pair{&d.attn_norm, &s.attn_norm},
                            {&d.wo, &s.wo},
                            {&d.q_norm, &s.q_norm},
                            {&d.k_norm, &s.k_norm},
                            {&d.ffn_norm, &s.ffn_norm},
                            {&d.router, &s.router}})
      *dst = place_on(backend, *src, storage_);
    d.dense = place_on(backend, s.dense, storage_);
    w_.layers.push_back(d);
  }
  if (!moe_) {
    owned_moe_ = std::make_unique<ResidentMoeExecutor>(backend, model.experts(), c.hidden_size,
                                                       c.n_experts_per_tok, moe_layers);
    moe_ = owned_moe_.get();
  }

  // KV cache for the whole context, allocated up front.
  for (int l = 0; l < c.n_layers; ++l) {
    k_cache_.push_back(backend.alloc(kv_bytes));
    v_cache_.push_back(backend.alloc(kv_bytes));
  }
  std::vector<float> inv = rope_inv_freq(c, &attn_factor_);
  inv_freq_ = backend.alloc(inv.size() * 4);
  backend.upload(inv_freq_.get(), inv.data(), inv.size() * 4);

  ids_ = backend.alloc(T * 4);
  x_ = backend.alloc(T * H * 4);
  h_ = backend.alloc(T * H * 4);
  qkv_ = backend.alloc(T * (size_t(c.q_dim()) + 2 * size_t(c.kv_dim())) * 4);
  att_ = backend.alloc(T * c.q_dim() * 4);
  o_ = backend.alloc(T * H * 4);
  ffn_ = backend.alloc(T * H * 4);
  router_logits_ = backend.alloc(T * std::max(1, c.n_experts) * 4);
  sel_ids_ = backend.alloc(T * K * 4);
  sel_w_ = backend.alloc(T * K * 4);
  logits_ = backend.alloc(size_t(logits_rows_) * size_t(c.vocab_size) * 4);
  io_ = backend.alloc(sizeof(StepIO));

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
  backend.synchronize();
  device_bytes_ = backend.memory_used() - used0;
}

Transformer::~Transformer() = default;

void Transformer::check_tokens(std::span<const int32_t> ids, int pos0) const {
  const ModelConfig& c = model_.config();
  const int n = int(ids.size());
  if (n == 0) fail(ErrorKind::kInvalidArgument, "forward: no tokens given");
  for (int i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= c.vocab_size)
      fail(ErrorKind::kInvalidArgument,
           "token id {} at position {} is outside the vocabulary (0 .. {})", ids[i], pos0 + i,
           c.vocab_size - 1);
  if (pos0 < 0 || int64_t(pos0) + n > n_ctx_)
    fail(ErrorKind::kContextFull,
         "sequence of {} tokens (positions {} .. {}) is longer than the context of {} tokens",
         pos0 + n, pos0, pos0 + n - 1, n_ctx_);
}

void Transformer::forward(std::span<const int32_t> ids, int pos0, bool all_logits,
                          std::vector<float>& logits) {
  check_tokens(ids, pos0);
  const int n = int(ids.size());
  const size_t V = size_t(model_.config().vocab_size);
  logits.assign((all_logits ? size_t(n) : 1) * V, 0.0f);
  for (int start = 0; start < n; start += max_T_) {
    const int T = std::min(max_T_, n - start);
    const bool last_chunk = start + T == n;
    float* dst =
        all_logits ? logits.data() + size_t(start) * V : (last_chunk ? logits.data() : nullptr);
    run_chunk(ids.data() + start, T, pos0 + start, all_logits, dst);
  }
}

int32_t Transformer::forward_sample(std::span<const int32_t> ids, int pos0, const SampleArgs& s,
                                    float u) {
  check_tokens(ids, pos0);
  const int n = int(ids.size());
  if (n == 1) return decode_step(ids[0], pos0, s, u);
  for (int start = 0; start < n; start += max_T_) {
    const int T = std::min(max_T_, n - start);
    load_input(ids.data() + start, T);
    compute(ids_.as<int32_t>(), T, pos0 + start, nullptr, false, start + T == n);
  }
  return sample_last(s, u);
}

int32_t Transformer::sample_last(const SampleArgs& s, float u) {
  if (last_row_ < 0) fail(ErrorKind::kInvalidArgument, "sample: no logits computed yet");
  StepIO io;
  io.u = u;
  backend_.upload(io_.get(), &io, sizeof io);
  StepIO* d = io_.as<StepIO>();
  const int V = model_.config().vocab_size;
  backend_.sample(logits_.as<float>() + last_row_ * V, V, s, &d->u, &d->sampled);
  int32_t token = 0;
  backend_.download(&token, &d->sampled, 4);
  return token;
}

void Transformer::last_logits(std::vector<float>& out) {
  if (last_row_ < 0) fail(ErrorKind::kInvalidArgument, "logits: none computed yet");
  const size_t V = size_t(model_.config().vocab_size);
  out.resize(V);
  backend_.download(out.data(), logits_.as<float>() + size_t(last_row_) * V, V * 4);
}

bool Transformer::graphs_usable() const {
  return graphs_enabled_ && backend_.supports_graphs() && owned_moe_ && !observer_;
}

// One token through the model and the sampler. Inputs travel in one small upload; the ops read
// the token, the position and the uniform number from backend memory, so the same captured graph
// serves every position. The first steps run eagerly (they size the backend's scratch buffers),
// the next one is captured.
int32_t Transformer::decode_step(int32_t token, int pos, const SampleArgs& s, float u) {
  StepIO io;
  io.token = token;
  io.pos = pos;
  io.u = u;
  backend_.upload(io_.get(), &io, sizeof io);
  if (host_embed_) load_input(&token, 1);  // before any capture: the graph starts from x_
  StepIO* d = io_.as<StepIO>();
  const int V = model_.config().vocab_size;
  auto step = [&] {
    compute(&d->token, 1, pos, &d->pos, false, true);
    backend_.sample(logits_.as<float>(), V, s, &d->u, &d->sampled);
  };
  if (!graphs_usable()) {
    step();
  } else {
    if (graph_ && !same_args(s, graph_args_)) graph_.reset();
    if (!graph_ && eager_steps_ < 1) {
      step();
      ++eager_steps_;
    } else {
      if (!graph_) {
        backend_.capture_begin();
        try {
          step();
        } catch (...) {
          backend_.capture_end();
          throw;
        }
        graph_ = backend_.capture_end();
        graph_args_ = s;
      }
      backend_.replay(*graph_);
      last_row_ = 0;
    }
  }
  int32_t out = 0;
  backend_.download(&out, &d->sampled, 4);
  return out;
}

void Transformer::load_input(const int32_t* ids, int T) {
  if (!host_embed_) {
    backend_.upload(ids_.get(), ids, size_t(T) * 4);
    return;
  }
  const size_t H = size_t(w_.embed.cols);
  host_x_.resize(size_t(T) * H);
  for (int t = 0; t < T; ++t) dequantize_row(w_.embed, ids[t], host_x_.data() + size_t(t) * H);
  backend_.upload(x_.get(), host_x_.data(), host_x_.size() * 4);
}

void Transformer::run_chunk(const int32_t* ids, int T, int pos0, bool all_logits,
                            float* logits_out) {
  load_input(ids, T);
  compute(ids_.as<int32_t>(), T, pos0, nullptr, all_logits, logits_out != nullptr, logits_out);
  if (!logits_out) return;
  if (!all_logits)
    backend_.download(logits_out, logits_.get(), size_t(model_.config().vocab_size) * 4);
  backend_.synchronize();
}

void Transformer::compute(const int32_t* ids_dev, int T, int pos0, const int32_t* pos,
                          bool all_logits, bool want_logits, float* logits_out) {
  const ModelConfig& c = model_.config();
  Backend& b = backend_;
  const int H = c.hidden_size, D = c.head_dim, K = c.n_experts_per_tok;
  float *x = x_.as<float>(), *h = h_.as<float>(), *ffn = ffn_.as<float>();
  float* q = qkv_.as<float>();
  float* k = q + int64_t(T) * c.q_dim();
  float* v = k + int64_t(T) * c.kv_dim();
  if (!host_embed_) b.embed(w_.embed, ids_dev, T, x);
  RopeArgs rope{inv_freq_.as<float>(), attn_factor_};
  rope.pos = pos;
  std::vector<int32_t> host_ids;
  std::vector<float> host_w;
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = w_.layers[l];
    // x += previous layer's FFN output, h = norm(x)
    b.rmsnorm(x, l == 0 ? nullptr : ffn, L.attn_norm, c.rms_norm_eps, T, H, h);
    if (T == 1 && !wqkv_[l].empty()) {
      b.matmul(h, 1, wqkv_[l], q);  // q, k, v are consecutive rows of one output
    } else {
      const MatView* w[] = {&L.wq, &L.wk, &L.wv};
      float* const o[] = {q, k, v};
      b.matmuls(h, T, w, o, 3);
    }
    AttentionArgs a;
    a.q = q;
    a.k_cache = k_cache_[l].get();
    a.v_cache = v_cache_[l].get();
    a.kv_dtype = kv_dtype_;
    a.T = T;
    a.pos0 = pos0;
    a.pos = pos;
    a.capacity = n_ctx_;
    a.n_heads = c.n_heads;
    a.n_kv_heads = c.n_kv_heads;
    a.head_dim = D;
    a.scale = 1.0f / std::sqrt(float(D));
    a.out = att_.as<float>();
    QkPrologue pro;
    pro.k = k;
    pro.v = v;
    pro.q_norm = L.q_norm;
    pro.k_norm = L.k_norm;
    pro.eps = c.rms_norm_eps;
    pro.rope = rope;
    b.qk_attention(a, pro);
    b.matmul(att_.as<float>(), T, L.wo, o_.as<float>());
    // x += attention output, h = norm(x)
    b.rmsnorm(x, o_.as<float>(), L.ffn_norm, c.rms_norm_eps, T, H, h);
    if (c.is_moe_layer(l)) {
      b.route(h, T, L.router, K, c.norm_topk_prob, router_logits_.as<float>(),
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
      m.dtype = L.dense.gate.dtype;
      m.inter = int(L.dense.gate.rows);
      m.out = ffn;
      b.moe(m);
    }
  }
  if (!want_logits) return;
  b.rmsnorm(x, ffn, w_.final_norm, c.rms_norm_eps, T, H, h);
  if (!all_logits) {
    b.matmul(h + int64_t(T - 1) * H, 1, w_.lm_head, logits_.as<float>());
    last_row_ = 0;
    return;
  }
  // Every row, in blocks of the logits buffer's rows, each downloaded before the next.
  const size_t V = size_t(c.vocab_size);
  for (int r0 = 0; r0 < T; r0 += logits_rows_) {
    const int rows = std::min(logits_rows_, T - r0);
    b.matmul(h + int64_t(r0) * H, rows, w_.lm_head, logits_.as<float>());
    if (logits_out) b.download(logits_out + size_t(r0) * V, logits_.get(), size_t(rows) * V * 4);
    last_row_ = rows - 1;
  }
}

}  // namespace cs
