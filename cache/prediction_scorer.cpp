#include "cache/prediction_scorer.h"

#include <algorithm>

namespace cs {

PredictionCounts& PredictionCounts::operator+=(const PredictionCounts& o) {
  predicted += o.predicted;
  actual += o.actual;
  correct += o.correct;
  return *this;
}

PredictionScorer::PredictionScorer(int n_layers, int n_experts)
    : E_(n_experts),
      layers_(size_t(n_layers)),
      covered_(size_t(n_layers), 0),
      pending_(size_t(n_layers) * size_t(n_experts), 0) {}

void PredictionScorer::predicted(const Prediction& p) {
  for (int l : p.layers) covered_.at(size_t(l)) = 1;
  for (const PredictedExpert& e : p.experts) pending_.at(e.id.index(E_)) = 1;
}

PredictionCounts PredictionScorer::actual(int layer, const std::vector<ExpertId>& experts) {
  PredictionCounts c;
  uint8_t* row = &pending_.at(size_t(layer) * size_t(E_));
  if (covered_.at(size_t(layer))) {
    for (int e = 0; e < E_; ++e) c.predicted += row[e];
    c.actual = experts.size();
    for (ExpertId id : experts) c.correct += row[id.expert];
    layers_[size_t(layer)] += c;
  }
  covered_[size_t(layer)] = 0;
  std::fill(row, row + E_, uint8_t(0));
  return c;
}

void PredictionScorer::end_step() {
  std::fill(covered_.begin(), covered_.end(), uint8_t(0));
  std::fill(pending_.begin(), pending_.end(), uint8_t(0));
}

PredictionCounts PredictionScorer::total() const {
  PredictionCounts t;
  for (const auto& c : layers_) t += c;
  return t;
}

void PredictionScorer::reset() {
  end_step();
  std::fill(layers_.begin(), layers_.end(), PredictionCounts{});
}

}  // namespace cs
