#include "runtime/engine/session.h"

#include <algorithm>

#include "common/error.h"

namespace cs {

Session::Session(const Model& model, Backend& backend, SessionOptions options, MoeExecutor* moe)
    : model_(model), transformer_(model, backend, moe, options.transformer) {}

std::span<const float> Session::eval(std::span<const int32_t> ids) {
  transformer_.forward(ids, n_past(), false, logits_);
  tokens_.insert(tokens_.end(), ids.begin(), ids.end());
  return logits_;
}

std::vector<float> Session::eval_all(std::span<const int32_t> ids) {
  std::vector<float> all;
  transformer_.forward(ids, n_past(), true, all);
  tokens_.insert(tokens_.end(), ids.begin(), ids.end());
  const size_t V = size_t(model_.config().vocab_size);
  logits_.assign(all.end() - V, all.end());
  return all;
}

std::vector<int32_t> Session::generate(std::span<const int32_t> prompt,
                                       const GenerateOptions& options,
                                       const TokenCallback& on_token) {
  cancelled_.store(false);
  if (!prompt.empty()) eval(prompt);
  if (logits_.empty())
    fail(ErrorKind::kInvalidArgument, "generate: the context is empty; give a prompt");
  Sampler sampler(options.sampling);
  std::vector<int32_t> out;
  for (int i = 0; i < options.max_tokens && !cancelled_.load(); ++i) {
    const int32_t t = sampler.sample(logits_, tokens_);
    out.push_back(t);
    const bool stop = std::find(options.stop_tokens.begin(), options.stop_tokens.end(), t) !=
                      options.stop_tokens.end();
    const bool keep_going = on_token ? on_token(t) : true;
    if (stop || !keep_going || i + 1 == options.max_tokens) {
      break;  // the last token is not evaluated: it enters the context with the next eval
    }
    if (n_past() + 1 > n_ctx())
      fail(ErrorKind::kInvalidArgument, "the context of {} tokens is full", n_ctx());
    const int32_t one[1] = {t};
    eval(one);
  }
  return out;
}

void Session::reset() {
  tokens_.clear();
  logits_.clear();
}

void Session::truncate(int n) {
  if (n < 0 || n > n_past())
    fail(ErrorKind::kInvalidArgument, "truncate: {} is outside 0 .. {}", n, n_past());
  tokens_.resize(size_t(n));
}

}  // namespace cs
