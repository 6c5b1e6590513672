// Perplexity of a token stream under a model, evaluated in windows of a fixed context. The
// definition is the one tools/demo/train.py uses for the demo model's held-out perplexity, so the
// runtime's number and PyTorch's compare directly:
//
//   Window k starts at s_k = k * stride and holds tokens [s_k, min(s_k + ctx, n)). It runs from an
//   empty context (no BOS is inserted) and scores each token t in [max(s_k + 1, e_{k-1}), e_k)
//   by -log p(token t | tokens s_k .. t-1), where e_{k-1} is the end of the previous window (0
//   for the first). The last window is the first whose end reaches n.
//   With stride == ctx (the default) windows do not overlap and each scores its positions
//   1 .. len-1: n - (number of windows) predictions in all. A smaller stride gives every scored
//   token more context (the "sliding window" perplexity) at ctx / stride times the cost.
//   perplexity = exp(sum of the scores / number of scored tokens).
//
// Thread-safety: evaluate_perplexity drives one Session; use one per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "runtime/engine/session.h"

namespace cs {

struct PerplexityOptions {
  int ctx = 512;    // tokens per window; the session's context must hold them
  int stride = 0;   // 0 = ctx: non-overlapping windows
  int chunk = 128;  // tokens per forward call (bounds the [chunk][V] logits buffer)
};

// One window: tokens [begin, end), scored from score_from (> begin) to end.
struct PerplexityWindow {
  int64_t begin = 0, end = 0, score_from = 0;
};

// The windows the definition above gives for n tokens. REQUIRES: ctx >= 2, 1 <= stride <= ctx.
std::vector<PerplexityWindow> perplexity_windows(int64_t n, int ctx, int stride);

struct PerplexityResult {
  double nll_sum = 0;     // nats
  int64_t predicted = 0;  // scored tokens
  int windows = 0;
  double mean_nll() const { return predicted ? nll_sum / double(predicted) : 0.0; }
  double perplexity() const;
};

struct PerplexityHooks {
  // Called before window `index` runs (after the session is reset), e.g. to start a new request
  // in routing statistics.
  std::function<void(int index, const PerplexityWindow& w)> on_window;
  // Called after each forward chunk with the running result and the number of tokens still to
  // score; return false to stop early (the result then covers what was scored).
  std::function<bool(const PerplexityResult& so_far, int64_t to_score)> on_progress;
};

// -log softmax(logits)[target], in double precision.
double token_nll(std::span<const float> logits, int32_t target);

// Evaluates `tokens` with `session` (reset before every window). Throws cs::Error when the
// options are out of range, the session's context is shorter than ctx, or a token id is outside
// the vocabulary (naming its position).
PerplexityResult evaluate_perplexity(Session& session, std::span<const int32_t> tokens,
                                     const PerplexityOptions& options,
                                     const PerplexityHooks& hooks = {});

}  // namespace cs
