#include "cache/predictor.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/error.h"

namespace cs {
namespace {

// Collects per-token selections into a prediction: union over tokens, score = max probability.
class Collector {
 public:
  explicit Collector(int n_experts) : best_(size_t(n_experts), -1.0f) {}
  // Keeps the top_k of probs [E] that reach `threshold`.
  void add_token(const float* probs, int top_k, double threshold, std::vector<int>& order) {
    const int E = int(best_.size());
    order.resize(size_t(E));
    std::iota(order.begin(), order.end(), 0);
    const int n = std::min(top_k, E);
    std::partial_sort(order.begin(), order.begin() + n, order.end(), [&](int a, int b) {
      return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
    });
    for (int j = 0; j < n; ++j) {
      const int e = order[size_t(j)];
      if (probs[e] >= threshold) best_[size_t(e)] = std::max(best_[size_t(e)], probs[e]);
    }
  }
  // Appends the selected experts of `layer`, highest score first, and resets.
  void flush(int layer, std::vector<PredictedExpert>& out) {
    const size_t start = out.size();
    for (size_t e = 0; e < best_.size(); ++e)
      if (best_[e] >= 0) out.push_back({{layer, int32_t(e)}, best_[e]});
    std::sort(out.begin() + std::ptrdiff_t(start), out.end(),
              [](const PredictedExpert& a, const PredictedExpert& b) {
                return a.score > b.score || (a.score == b.score && a.id < b.id);
              });
    std::fill(best_.begin(), best_.end(), -1.0f);
  }

 private:
  std::vector<float> best_;
};

class PredictorBase : public Predictor {
 public:
  explicit PredictorBase(const PredictorParams& p) : p_(p) {
    if (p_.n_layers <= 0 || p_.n_experts <= 0 || p_.k <= 0)
      fail(ErrorKind::kInvalidArgument, "predictor: empty model ({} layers, {} experts, k {})",
           p_.n_layers, p_.n_experts, p_.k);
    if (p_.horizon < 0) fail(ErrorKind::kInvalidArgument, "predictor: horizon {} < 0", p_.horizon);
    if (!(p_.threshold >= 0 && p_.threshold <= 1))
      fail(ErrorKind::kInvalidArgument, "predictor: threshold {} outside [0, 1]", p_.threshold);
    if (p_.top_k <= 0) p_.top_k = p_.k;
    pos_.assign(size_t(p_.n_layers), -1);
    for (size_t i = 0; i < p_.layers.size(); ++i) pos_.at(size_t(p_.layers[i])) = int(i);
  }

 protected:
  // The MoE layers after `layer`, at most `n`.
  std::vector<int> next_layers(int layer, int n) const {
    std::vector<int> out;
    const int i = pos_.at(size_t(layer));
    for (int j = i + 1; i >= 0 && j < int(p_.layers.size()) && int(out.size()) < n; ++j)
      out.push_back(p_.layers[size_t(j)]);
    return out;
  }
  int position(int layer) const { return pos_.at(size_t(layer)); }
  PredictorParams p_;

 private:
  std::vector<int> pos_;  // per layer: index in p_.layers, -1 when not MoE
};

class NonePredictor final : public PredictorBase {
 public:
  using PredictorBase::PredictorBase;
  PredictorKind kind() const override { return PredictorKind::kNone; }
  void on_routing(const LayerRouting&) override {}
  Prediction predict(int) override { return {}; }
};

class LookaheadPredictor final : public PredictorBase {
 public:
  explicit LookaheadPredictor(const PredictorParams& p) : PredictorBase(p), collect_(p.n_experts) {}
  PredictorKind kind() const override { return PredictorKind::kLookahead; }
  int lookahead() const override { return p_.horizon; }
  void on_lookahead(int layer, int n, int T, const float* logits) override {
    const int E = p_.n_experts;
    const std::vector<int> next = next_layers(layer, n);
    if (int(next.size()) != n)
      fail(ErrorKind::kInternal, "lookahead: {} routers given after layer {}, {} MoE layers follow",
           n, layer, next.size());
    pending_ = Prediction{next, {}};
    std::vector<float> probs(static_cast<size_t>(E));
    for (int j = 0; j < n; ++j) {
      for (int t = 0; t < T; ++t) {
        const float* row = logits + (size_t(t) * size_t(n) + size_t(j)) * size_t(E);
        std::copy(row, row + E, probs.begin());
        softmax_rows(probs.data(), 1, E);
        collect_.add_token(probs.data(), p_.top_k, p_.threshold, order_);
      }
      collect_.flush(next[size_t(j)], pending_.experts);
    }
    pending_layer_ = layer;
  }
  void on_routing(const LayerRouting&) override {}
  Prediction predict(int layer) override {
    if (pending_layer_ != layer) return {};
    pending_layer_ = -1;
    return std::move(pending_);
  }

 private:
  Collector collect_;
  std::vector<int> order_;
  Prediction pending_;
  int pending_layer_ = -1;
};

// m_i[e][e'] = P(e' routed in MoE layer i+1 | e routed in MoE layer i), learned from counts.
// For a token routed to set S at layer i: q(e') = mean over e in S of m_i[e][e'] estimates the
// probability that e' is among its experts at layer i+1; q chains: q2 = (q . m_{i+1}) / k.
class CoactivationPredictor final : public PredictorBase {
 public:
  explicit CoactivationPredictor(const PredictorParams& p)
      : PredictorBase(p),
        counts_(p.layers.size() * size_t(p.n_experts) * size_t(p.n_experts), 0.0f),
        totals_(p.layers.size() * size_t(p.n_experts), 0.0f) {}
  PredictorKind kind() const override { return PredictorKind::kCoactivation; }

  void on_routing(const LayerRouting& r) override {
    const int i = position(r.layer);
    if (i < 0) return;
    const size_t E = size_t(p_.n_experts);
    if (prev_pos_ == i - 1 && prev_T_ == r.T && i > 0) {
      float* c = &counts_[size_t(i - 1) * E * E];
      float* n = &totals_[size_t(i - 1) * E];
      for (int t = 0; t < r.T; ++t)
        for (int a = 0; a < r.k; ++a) {
          const size_t e = size_t(prev_ids_[size_t(t) * size_t(r.k) + size_t(a)]);
          n[e] += 1;
          for (int b = 0; b < r.k; ++b)
            c[e * E + size_t(r.ids[size_t(t) * size_t(r.k) + size_t(b)])] += 1;
        }
    }
    prev_ids_.assign(r.ids, r.ids + size_t(r.T) * size_t(r.k));
    prev_pos_ = i;
    prev_T_ = r.T;
  }

  Prediction predict(int layer) override {
    Prediction out;
    if (position(layer) != prev_pos_ || prev_pos_ < 0) return out;
    out.layers = next_layers(layer, p_.horizon);
    const size_t E = size_t(p_.n_experts), K = size_t(p_.k);
    const double threshold = std::max(p_.threshold, 1e-9);  // never predict impossible experts
    while (collect_.size() < out.layers.size()) collect_.emplace_back(p_.n_experts);
    std::vector<float> cur(E), nxt(E);
    for (int t = 0; t < prev_T_; ++t) {
      std::fill(cur.begin(), cur.end(), 0.0f);
      for (size_t a = 0; a < K; ++a) cur[size_t(prev_ids_[size_t(t) * K + a])] = 1.0f;
      for (size_t h = 0; h < out.layers.size(); ++h) {
        const size_t from = size_t(prev_pos_) + h;
        const float* c = &counts_[from * E * E];
        const float* n = &totals_[from * E];
        std::fill(nxt.begin(), nxt.end(), 0.0f);
        for (size_t e = 0; e < E; ++e) {
          if (cur[e] == 0 || n[e] == 0) continue;
          const float w = cur[e] / n[e];
          for (size_t f = 0; f < E; ++f) nxt[f] += w * c[e * E + f];
        }
        // cur is k-hot (the routed set) or, after a hop, expected indicators summing to k;
        // sum_f P(f | e) = k, so dividing by k keeps each entry a probability.
        for (size_t f = 0; f < E; ++f) nxt[f] /= float(K);
        collect_[h].add_token(nxt.data(), p_.top_k, threshold, order_);
        cur.swap(nxt);
      }
    }
    for (size_t h = 0; h < out.layers.size(); ++h) collect_[h].flush(out.layers[h], out.experts);
    return out;
  }

  void end_step() override { prev_pos_ = -1; }

 private:
  std::vector<Collector> collect_;  // one per horizon layer
  std::vector<int> order_;
  std::vector<float> counts_;  // [MoE layer i][E][E]: tokens with e at i and e' at i+1
  std::vector<float> totals_;  // [MoE layer i][E]: tokens with e at i (that reached i+1)
  std::vector<int32_t> prev_ids_;
  int prev_pos_ = -1, prev_T_ = 0;
};

}  // namespace

const char* predictor_name(PredictorKind k) {
  switch (k) {
    case PredictorKind::kNone:
      return "none";
    case PredictorKind::kLookahead:
      return "lookahead";
    case PredictorKind::kCoactivation:
      return "coactivation";
  }
  return "?";
}

std::optional<PredictorKind> parse_predictor_kind(std::string_view name) {
  for (PredictorKind k :
       {PredictorKind::kNone, PredictorKind::kLookahead, PredictorKind::kCoactivation})
    if (name == predictor_name(k)) return k;
  return std::nullopt;
}

std::unique_ptr<Predictor> make_predictor(PredictorKind kind, const PredictorParams& params) {
  switch (kind) {
    case PredictorKind::kNone:
      return std::make_unique<NonePredictor>(params);
    case PredictorKind::kLookahead:
      return std::make_unique<LookaheadPredictor>(params);
    case PredictorKind::kCoactivation:
      return std::make_unique<CoactivationPredictor>(params);
  }
  fail(ErrorKind::kInternal, "unknown predictor");
}

void softmax_rows(float* x, int rows, int n) {
  for (int r = 0; r < rows; ++r) {
    float* v = x + size_t(r) * size_t(n);
    const float mx = *std::max_element(v, v + n);
    float sum = 0;
    for (int i = 0; i < n; ++i) sum += (v[i] = std::exp(v[i] - mx));
    for (int i = 0; i < n; ++i) v[i] /= sum;
  }
}

}  // namespace cs
