// A routing trace: what a MoE model's routers chose, token by token and layer by layer, on a set of
// requests, recorded once (`coldstream trace`) and replayed many times through the runtime's own
// cache, predictor and planner code (cache/trace_replay.h, `coldstream tune`). docs/TRACE.md
// documents the binary format.
//
// The trace keeps the runtime's unit of work, the step: one forward pass over all layers (a
// prefill chunk of T tokens or one decoded token), within a request (a fresh context). Per step it
// holds the T token ids fed (version 2; a run teacher-forced on them routes exactly as traced,
// whatever the placement), and per MoE layer
//   ids [T][k], weights [T][k]   the router's choice and its weights, as the planner sees them,
//   logits [T][ahead * E]        the routers of the next `ahead` MoE layers applied to this
//                                layer's MoE input (what the gate-lookahead predictor is fed;
//                                ahead = min(header.lookahead, MoE layers left)),
//   predicted[kind]              what each predictor (lookahead and co-activation with the
//                                header's horizon and threshold) predicted at this layer.
// The logits let the replay run the lookahead predictor with any horizon up to header.lookahead
// and any threshold; co-activation learns from the routing alone.
//
// Encoding and decoding work on bytes; cache/ touches no files (the caller reads and writes).
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cache/expert_id.h"

namespace cs {

// Version 2 added the token ids of each step; version 1 files (no ids) are still read.
inline constexpr uint32_t kTraceVersion = 2;

struct TraceHeader {
  std::string model;  // what was traced (a path or a name), informational
  int n_layers = 0, n_experts = 0, k = 0;
  std::vector<int> moe_layers;  // increasing
  uint64_t expert_bytes = 0;    // bytes of one expert blob (the transfer unit)
  int lookahead = 0;            // router logits recorded for this many following MoE layers
  int horizon = 1;              // predictions stored: lookahead horizon and threshold used
  double threshold = 0.05;
  int max_batch = 0;       // tokens per prefill chunk when recorded
  bool truncated = false;  // the size cap stopped recording early
};

struct TraceLayer {
  int layer = 0;
  int ahead = 0;                            // MoE layers whose logits follow
  std::vector<int32_t> ids;                 // [T][k]
  std::vector<float> weights;               // [T][k]
  std::vector<float> logits;                // [T][ahead * E], empty when ahead == 0
  std::vector<ExpertId> pred_lookahead;     // predicted by gate lookahead at this layer
  std::vector<ExpertId> pred_coactivation;  // predicted by co-activation at this layer
};

struct TraceStep {
  uint32_t request = 0;
  int T = 0;
  std::vector<int32_t> tokens;     // [T] the token ids fed; empty when not recorded (version 1)
  std::vector<TraceLayer> layers;  // one per MoE layer, in header.moe_layers order
};

struct RoutingTrace {
  TraceHeader header;
  std::vector<TraceStep> steps;

  int requests() const { return steps.empty() ? 0 : int(steps.back().request) + 1; }
  int64_t tokens() const;  // tokens over all steps
  // Every step carries its token ids (a run can be teacher-forced on the trace).
  bool has_tokens() const;
};

// The logits of the nearest `ahead` (<= l.ahead) layers of a recorded layer, as a predictor's
// on_lookahead() wants them: out [T][ahead * n_experts].
void lookahead_logits(const TraceLayer& l, int T, int n_experts, int ahead,
                      std::vector<float>& out);

// Encoded size of one step (what the cap counts).
uint64_t encoded_step_bytes(const TraceHeader& h, const TraceStep& s);

// The whole trace as bytes (little-endian), and back. decode throws cs::Error naming `origin`
// and what is wrong (bad magic, unsupported version, truncated data, ids out of range).
std::string encode_trace(const RoutingTrace& t);
RoutingTrace decode_trace(std::string_view bytes, std::string_view origin);

// Appends steps up to a byte cap: add() returns false (and records nothing) once the next step
// would pass it, and marks the trace truncated.
class TraceBuilder {
 public:
  TraceBuilder(TraceHeader header, uint64_t max_bytes);
  bool add(TraceStep step);
  bool full() const { return trace_.header.truncated; }
  uint64_t bytes() const { return bytes_; }
  uint64_t max_bytes() const { return max_; }
  const RoutingTrace& trace() const { return trace_; }
  RoutingTrace take() { return std::move(trace_); }

 private:
  RoutingTrace trace_;
  uint64_t max_, bytes_;
};

}  // namespace cs
