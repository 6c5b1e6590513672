// Records a routing trace (cache/routing_trace.h) while a model runs: a MoeExecutor that wraps
// the one computing the experts, sees every MoE layer's input and routing, applies the routers
// of the next MoE layers to that input (what the gate-lookahead predictor is fed), runs the
// lookahead and co-activation predictors to store what they predicted, and hands the layer to
// the inner executor. Steps and requests follow the offload executor's definition: a step begins
// at the first MoE layer of a forward pass; begin_request() marks a fresh context.
//
// Thread-safety: one thread (the session's).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "cache/predictor.h"
#include "cache/routing_trace.h"
#include "kernels/backend.h"
#include "runtime/engine/moe_executor.h"
#include "runtime/model/model.h"

namespace cs {

struct TraceRecorderOptions {
  int lookahead = 2;  // router logits recorded for this many following MoE layers
  int horizon = 1;    // stored lookahead predictions: horizon and threshold
  double threshold = 0.05;
  uint64_t max_bytes = 256ull << 20;  // the trace's size cap
  int max_batch = 0;                  // recorded in the header (the session's prefill chunk)
};

class TraceRecorder final : public MoeExecutor {
 public:
  // `inner` computes the experts (null: every expert resident on `backend`).
  TraceRecorder(Backend& backend, const Model& model, TraceRecorderOptions options,
                MoeExecutor* inner = nullptr);
  ~TraceRecorder() override;

  void begin_request();
  // Tokens the session is about to run, in order (run_trace_requests' `feed`): each step takes
  // its T ids from the front. Steps without fed ids leave the trace without token ids.
  void feed(std::span<const int32_t> tokens);
  void forward(int layer, const float* x, int T, const int32_t* ids, const float* weights,
               float* out) override;
  // Closes the step in progress. full(): the cap was reached; later steps are not recorded.
  void flush();
  bool full() const { return builder_.full(); }
  uint64_t bytes() const { return builder_.bytes(); }
  RoutingTrace take();

 private:
  Backend& backend_;
  const Model& model_;
  TraceRecorderOptions opt_;
  std::unique_ptr<MoeExecutor> own_inner_;
  MoeExecutor* inner_;
  std::vector<int> moe_layers_;
  TraceBuilder builder_;
  std::unique_ptr<Predictor> lookahead_, coactivation_;
  TraceStep step_;
  bool in_step_ = false;
  uint32_t request_ = 0;
  bool request_used_ = false;
  Buffer logits_;
  int logits_T_ = 0;
  std::vector<float> host_x_;
  std::vector<int32_t> pending_;  // fed ids not yet taken by a step
};

}  // namespace cs
