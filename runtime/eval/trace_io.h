// Routing traces on disk and the requests that make them: reading and writing trace files (the
// bytes are cache/routing_trace.h's), the prompts file of `coldstream trace` (JSON Lines, raw or
// chat), running those requests on a session, and the routing statistics of a trace (the same
// RoutingStats `coldstream routing-stats` prints).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "cache/routing_trace.h"
#include "runtime/engine/session.h"
#include "runtime/eval/routing_stats.h"
#include "runtime/model/model.h"

namespace cs {

RoutingTrace read_trace_file(const std::string& path);
void write_trace_file(const std::string& path, const RoutingTrace& trace);

struct TraceRequest {
  std::vector<int32_t> prompt;
  int max_tokens = 0;  // greedy tokens generated after the prompt
};

// One JSON object per line (blank lines and lines starting with '#' are skipped):
//   {"prompt": "raw text"}                                   the text as is
//   {"messages": [{"role": "user", "content": "..."}, ...]}  rendered with the model's chat
//                                                            template, generation prompt added
// Either may carry "max_tokens" (else `default_max_tokens`). Errors name the file and line.
std::vector<TraceRequest> load_trace_requests(const std::string& path, const Model& model,
                                              int default_max_tokens);

// Runs each request from an empty context: prefill, then greedy decoding until max_tokens or an
// end-of-sequence token. `before` is called before each request (index); returning false stops.
// `feed` (optional) hears the tokens about to enter the model, in order: the prompt, then each
// generated token that is fed back (not the last one, which is never evaluated).
void run_trace_requests(Session& session, const Model& model,
                        const std::vector<TraceRequest>& requests,
                        const std::function<bool(size_t)>& before,
                        const std::function<void(std::span<const int32_t>)>& feed = {});

// Teacher-forced run of a trace (REQUIRES: trace.has_tokens()): each recorded step's token ids
// in one Session::eval, a fresh context at each new request, so the session runs the same
// forward passes (steps) on the same tokens as when traced and the routing is the trace's.
// `after` hears each step and the wall time of its eval.
void run_trace_steps(Session& session, const RoutingTrace& trace,
                     const std::function<void(const TraceStep&, double seconds)>& after);

// The routing statistics of a trace (requests as recorded).
RoutingStats::Report routing_report(const RoutingTrace& trace);

}  // namespace cs
