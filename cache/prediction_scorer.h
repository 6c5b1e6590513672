// Precision and recall of a predictor, per layer: what it predicted for a layer (the union of all
// predictions covering it during a step) against the experts the layer then routed to.
//   precision = correct / predicted, recall = correct / actual,
// counted over layers a prediction covered (the first MoE layer of a step is never covered).
//
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <vector>

#include "cache/predictor.h"

namespace cs {

struct PredictionCounts {
  uint64_t predicted = 0, actual = 0, correct = 0;
  double precision() const { return predicted ? double(correct) / double(predicted) : 0.0; }
  double recall() const { return actual ? double(correct) / double(actual) : 0.0; }
  PredictionCounts& operator+=(const PredictionCounts& o);
};

class PredictionScorer {
 public:
  PredictionScorer(int n_layers, int n_experts);
  // A prediction made during the current step.
  void predicted(const Prediction& p);
  // The distinct experts `layer` routed to in this step; scores the layer if a prediction
  // covered it and returns that layer's counts for this step (zero when not covered).
  PredictionCounts actual(int layer, const std::vector<ExpertId>& experts);
  void end_step();  // forgets predictions of layers that did not run

  const std::vector<PredictionCounts>& per_layer() const { return layers_; }
  PredictionCounts total() const;
  void reset();

 private:
  int E_;
  std::vector<PredictionCounts> layers_;
  std::vector<uint8_t> covered_;  // per layer, this step
  std::vector<uint8_t> pending_;  // [layer][E], this step
};

}  // namespace cs
