#include "runtime/eval/perplexity.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace cs {

double PerplexityResult::perplexity() const {
  return std::exp(mean_nll());
}

std::vector<PerplexityWindow> perplexity_windows(int64_t n, int ctx, int stride) {
  if (ctx < 2) fail(ErrorKind::kInvalidArgument, "perplexity: ctx must be at least 2, got {}", ctx);
  if (stride < 1 || stride > ctx)
    fail(ErrorKind::kInvalidArgument, "perplexity: stride must be in 1 .. ctx ({}), got {}", ctx,
         stride);
  std::vector<PerplexityWindow> out;
  int64_t prev_end = 0;
  for (int64_t s = 0; s < n; s += stride) {
    const int64_t e = std::min<int64_t>(s + ctx, n);
    const int64_t from = std::max(s + 1, prev_end);
    if (from < e) out.push_back({s, e, from});
    prev_end = e;
    if (e == n) break;
  }
  return out;
}

double token_nll(std::span<const float> logits, int32_t target) {
  double mx = -INFINITY;
  for (float v : logits) mx = std::max(mx, double(v));
  double sum = 0;
  for (float v : logits) sum += std::exp(double(v) - mx);
  return mx + std::log(sum) - double(logits[size_t(target)]);
}

PerplexityResult evaluate_perplexity(Session& session, std::span<const int32_t> tokens,
                                     const PerplexityOptions& options,
                                     const PerplexityHooks& hooks) {
  const int ctx = options.ctx;
  const int stride = options.stride > 0 ? options.stride : ctx;
  const std::vector<PerplexityWindow> plan =
      perplexity_windows(int64_t(tokens.size()), ctx, stride);
  if (session.n_ctx() < ctx)
    fail(ErrorKind::kInvalidArgument,
         "perplexity: the session's context holds {} tokens, fewer than the window of {}",
         session.n_ctx(), ctx);
  const int V = session.transformer().config().vocab_size;
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= V)
      fail(ErrorKind::kInvalidArgument,
           "perplexity: token {} at position {} is outside the vocabulary of {}", tokens[i], i, V);
  int64_t to_score = 0;
  for (const PerplexityWindow& w : plan) to_score += w.end - w.score_from;

  PerplexityResult r;
  const int chunk = std::max(1, options.chunk);
  for (size_t k = 0; k < plan.size(); ++k) {
    const PerplexityWindow& w = plan[k];
    session.reset();
    if (hooks.on_window) hooks.on_window(int(k), w);
    for (int64_t c0 = w.begin; c0 < w.end; c0 += chunk) {
      const int64_t c1 = std::min<int64_t>(c0 + chunk, w.end);
      const std::vector<float> logits =
          session.eval_all(tokens.subspan(size_t(c0), size_t(c1 - c0)));
      // Row p - c0 holds the logits after token p: it predicts token p + 1.
      for (int64_t p = c0; p < c1; ++p) {
        const int64_t t = p + 1;
        if (t < w.score_from || t >= w.end) continue;
        r.nll_sum += token_nll(std::span<const float>(&logits[size_t(p - c0) * V], size_t(V)),
                               tokens[size_t(t)]);
        ++r.predicted;
        --to_score;
      }
      if (hooks.on_progress && !hooks.on_progress(r, to_score)) {
        r.windows = int(k) + 1;
        return r;
      }
    }
    r.windows = int(k) + 1;
  }
  return r;
}

}  // namespace cs
