// Routing traces on disk and the requests that make them: reading and writing trace files (the
// bytes are cache/routing_trace.h's), the prompts file of `coldstream trace` (JSON Lines, raw or
// chat), running those requests on a session, and the routing statistics of a trace (the same
// RoutingStats `coldstream routing-stats` prints).
#pragma once

#include <cstdint>
#include <functional>
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
void run_trace_requests(Session& session, const Model& model,
                        const std::vector<TraceRequest>& requests,
                        const std::function<bool(size_t)>& before);

// The routing statistics of a trace (requests as recorded).
RoutingStats::Report routing_report(const RoutingTrace& trace);

}  // namespace cs
