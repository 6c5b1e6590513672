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
  Sampler sampler(options.sampling);
  const SampleArgs sa = sampler.args();
  // On the backend when it can sample with these settings: only the token comes back per step.
  const bool on_device = sampler.device_ok() && transformer_.can_sample(sa);
  int32_t t = 0;
  if (on_device) {
    if (!prompt.empty()) {
      t = transformer_.forward_sample(prompt, n_past(), sa, sampler.next_uniform());
      tokens_.insert(tokens_.end(), prompt.begin(), prompt.end());
    } else {
      if (logits_.empty())
        fail(ErrorKind::kInvalidArgument, "generate: the context is empty; give a prompt");
      t = transformer_.sample_last(sa, sampler.next_uniform());
    }
  } else {
    if (!prompt.empty()) eval(prompt);
    if (logits_.empty())
      fail(ErrorKind::kInvalidArgument, "generate: the context is empty; give a prompt");
    t = sampler.sample(logits_, tokens_);
  }
  std::vector<int32_t> out;
  for (int i = 0; i < options.max_tokens && !cancelled_.load(); ++i) {
    out.push_back(t);
    const bool stop = std::find(options.stop_tokens.begin(), options.stop_tokens.end(), t) !=
                      options.stop_tokens.end();
    const bool keep_going = on_token ? on_token(t) : true;
    if (stop || !keep_going || i + 1 == options.max_tokens) {
      break;  // the last token is not evaluated: it enters the context with the next eval
    }
    if (n_past() + 1 > n_ctx())
      fail(ErrorKind::kContextFull, "the context of {} tokens is full", n_ctx());
    const int32_t one[1] = {t};
    if (on_device) {
      t = transformer_.forward_sample(one, n_past(), sa, sampler.next_uniform());
      tokens_.push_back(one[0]);
    } else {
      eval(one);
      t = sampler.sample(logits_, tokens_);
    }
  }
  // Keep last_logits() true to the context: fetch the last position's logits once.
  if (on_device && !tokens_.empty()) transformer_.last_logits(logits_);
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
