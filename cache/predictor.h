// Prefetch predictors: which experts the next MoE layers will route to, guessed before they run.
//
// - gate lookahead: the routers of the next `horizon` MoE layers applied to the current layer's
//   hidden state in one batched product (run by the caller on its backend; the predictor gets the
//   logits). An expert is predicted when it is among a token's `top_k` and its probability
//   reaches `threshold`.
// - co-activation: counts of "expert e in layer L and e' in the next MoE layer for the same token",
//   learned online; the conditional probabilities chain to further layers.
// - none.
//
// Deterministic and pure (the trace simulator replays them): same inputs, same predictions.
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "cache/expert_id.h"

namespace cs {

enum class PredictorKind : uint8_t { kNone, kLookahead, kCoactivation };
const char* predictor_name(PredictorKind k);  // "none", "lookahead", "coactivation"
std::optional<PredictorKind> parse_predictor_kind(std::string_view name);

struct PredictorParams {
  int n_layers = 0, n_experts = 0;
  int k = 0;                // experts routed per token
  std::vector<int> layers;  // the MoE layers, increasing
  int horizon = 1;          // predict the next `horizon` MoE layers
  double threshold = 0.05;  // smallest predicted probability kept
  int top_k = 0;            // per token, at most this many experts per layer (0: k)
};

// The routing of one MoE layer for T tokens, in host memory.
struct LayerRouting {
  int layer = 0;
  int T = 0, k = 0;
  const int32_t* ids = nullptr;    // [T][k]
  const float* weights = nullptr;  // [T][k]
};

struct PredictedExpert {
  ExpertId id;
  float score = 0;  // the largest predicted probability over the tokens
};

struct Prediction {
  std::vector<int> layers;               // the layers this prediction covers (nearest first)
  std::vector<PredictedExpert> experts;  // nearest layer first, then highest score, then id
};

class Predictor {
 public:
  virtual ~Predictor() = default;
  virtual PredictorKind kind() const = 0;
  // How many following MoE layers' routers the caller should apply to each layer's hidden state
  // (0 when the predictor does not use them).
  virtual int lookahead() const { return 0; }
  // logits [T][n * E]: routers of the n MoE layers after `layer` applied to its hidden state
  // (the rows of the n routers stacked, nearest layer first). n may be smaller than lookahead()
  // near the last layer.
  virtual void on_lookahead(int layer, int n, int T, const float* logits) {}
  // The actual routing of a layer (learning). Called before predict(layer).
  virtual void on_routing(const LayerRouting& r) = 0;
  // Experts expected in the MoE layers after `layer` within the current step.
  virtual Prediction predict(int layer) = 0;
  // A step (one forward pass over all layers) ended.
  virtual void end_step() {}
};

std::unique_ptr<Predictor> make_predictor(PredictorKind kind, const PredictorParams& params);

// Softmax of each row of x [rows][n], in place, in fp32 (as the router computes it).
void softmax_rows(float* x, int rows, int n);

}  // namespace cs
