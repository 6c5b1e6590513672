#include "runtime/eval/trace_recorder.h"

#include <algorithm>

#include "common/error.h"
#include "offload/blob_pack.h"
#include "runtime/model/weight_id.h"

namespace cs {
namespace {

TraceHeader header_of(const Model& model, const TraceRecorderOptions& o,
                      const std::vector<int>& moe_layers) {
  const ModelConfig& c = model.config();
  TraceHeader h;
  h.model = model.path();
  h.n_layers = c.n_layers;
  h.n_experts = c.n_experts;
  h.k = c.n_experts_per_tok;
  h.moe_layers = moe_layers;
  h.expert_bytes = layout_of(model.experts().host_view(moe_layers.front(), 0)).bytes;
  h.lookahead = std::clamp(o.lookahead, 0, int(moe_layers.size()) - 1);
  h.horizon = o.horizon;
  h.threshold = o.threshold;
  h.max_batch = o.max_batch;
  return h;
}

std::vector<int> moe_layers_of(const Model& model) {
  std::vector<int> v = moe_layers(model.config());
  if (v.empty()) fail(ErrorKind::kUnsupported, "{}: no MoE layers to trace", model.path());
  return v;
}

}  // namespace

TraceRecorder::TraceRecorder(Backend& backend, const Model& model, TraceRecorderOptions options,
                             MoeExecutor* inner)
    : backend_(backend),
      model_(model),
      opt_(options),
      inner_(inner),
      moe_layers_(moe_layers_of(model)),
      builder_(header_of(model, options, moe_layers_), options.max_bytes) {
  const ModelConfig& c = model.config();
  if (opt_.horizon < 1 || opt_.horizon > builder_.trace().header.lookahead)
    fail(ErrorKind::kInvalidArgument,
         "trace: prediction horizon {} must be between 1 and the recorded lookahead {}",
         opt_.horizon, builder_.trace().header.lookahead);
  if (!inner_) {
    std::vector<bool> moe(size_t(c.n_layers));
    for (int l : moe_layers_) moe[size_t(l)] = true;
    own_inner_ = std::make_unique<ResidentMoeExecutor>(backend, model.experts(), c.hidden_size,
                                                       c.n_experts_per_tok, moe);
    inner_ = own_inner_.get();
  }
  PredictorParams pp;
  pp.n_layers = c.n_layers;
  pp.n_experts = c.n_experts;
  pp.k = c.n_experts_per_tok;
  pp.layers = moe_layers_;
  pp.horizon = opt_.horizon;
  pp.threshold = opt_.threshold;
  lookahead_ = make_predictor(PredictorKind::kLookahead, pp);
  coactivation_ = make_predictor(PredictorKind::kCoactivation, pp);
}

TraceRecorder::~TraceRecorder() = default;

void TraceRecorder::flush() {
  if (!in_step_) return;
  in_step_ = false;
  if (step_.layers.size() == moe_layers_.size()) builder_.add(std::move(step_));
  step_ = TraceStep{};
  lookahead_->end_step();
  coactivation_->end_step();
}

void TraceRecorder::begin_request() {
  flush();
  if (request_used_) ++request_;
  request_used_ = false;
  pending_.clear();
}

void TraceRecorder::feed(std::span<const int32_t> tokens) {
  pending_.insert(pending_.end(), tokens.begin(), tokens.end());
}

RoutingTrace TraceRecorder::take() {
  flush();
  return builder_.take();
}

void TraceRecorder::forward(int layer, const float* x, int T, const int32_t* ids,
                            const float* weights, float* out) {
  const TraceHeader& h = builder_.trace().header;
  const int K = h.k, E = h.n_experts;
  if (layer == moe_layers_.front()) flush();
  if (!builder_.full()) {
    if (!in_step_) {
      in_step_ = true;
      request_used_ = true;
      step_.request = request_;
      step_.T = T;
      if (pending_.size() >= size_t(T)) {
        step_.tokens.assign(pending_.begin(), pending_.begin() + T);
        pending_.erase(pending_.begin(), pending_.begin() + T);
      }
    }
    TraceLayer l;
    l.layer = layer;
    const size_t n = size_t(T) * size_t(K);
    l.ids.resize(n);
    l.weights.resize(n);
    backend_.download(l.ids.data(), ids, n * 4);
    backend_.download(l.weights.data(), weights, n * 4);
    const int pos =
        int(std::find(moe_layers_.begin(), moe_layers_.end(), layer) - moe_layers_.begin());
    l.ahead = std::min(h.lookahead, int(moe_layers_.size()) - 1 - pos);
    if (l.ahead > 0) {
      if (T > logits_T_) {
        logits_ = backend_.alloc(size_t(T) * size_t(E) * 4);
        logits_T_ = T;
      }
      l.logits.resize(size_t(T) * size_t(l.ahead) * size_t(E));
      std::vector<float> one(size_t(T) * size_t(E));
      for (int j = 0; j < l.ahead; ++j) {
        const MatView& r = model_.weights().layers[size_t(moe_layers_[size_t(pos + 1 + j)])].router;
        backend_.matmul(x, T, r, logits_.as<float>());
        backend_.download(one.data(), logits_.get(), one.size() * 4);
        for (int t = 0; t < T; ++t)
          std::copy_n(
              one.begin() + ptrdiff_t(size_t(t) * size_t(E)), E,
              l.logits.begin() + ptrdiff_t((size_t(t) * size_t(l.ahead) + size_t(j)) * size_t(E)));
      }
    }
    const LayerRouting routing{layer, T, K, l.ids.data(), l.weights.data()};
    std::vector<float> lg;
    for (Predictor* p : {lookahead_.get(), coactivation_.get()}) {
      p->on_routing(routing);
      const int ahead = std::min(p->lookahead(), l.ahead);
      if (ahead > 0) {
        lookahead_logits(l, T, E, ahead, lg);
        p->on_lookahead(layer, ahead, T, lg.data());
      }
      std::vector<ExpertId>& dst = p == lookahead_.get() ? l.pred_lookahead : l.pred_coactivation;
      for (const PredictedExpert& pe : p->predict(layer).experts) dst.push_back(pe.id);
    }
    step_.layers.push_back(std::move(l));
  }
  inner_->forward(layer, x, T, ids, weights, out);
}

}  // namespace cs
