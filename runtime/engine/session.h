// A conversation's state on one model: the tokens in context, the KV cache, sampling, stop
// conditions and cancellation. Both the CLI and the C API drive sessions.
//
// Thread-safety: a session is used by one thread at a time, except cancel(), which any thread
// may call.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "kernels/backend.h"
#include "runtime/engine/sampler.h"
#include "runtime/engine/transformer.h"
#include "runtime/model/model.h"

namespace cs {

struct SessionOptions {
  TransformerOptions transformer;
};

struct GenerateOptions {
  int max_tokens = 128;
  SamplingParams sampling;
  std::vector<int32_t> stop_tokens;  // generation ends after emitting one of these
};

// Return false to stop generation after this token.
using TokenCallback = std::function<bool(int32_t token)>;

class Session {
 public:
  Session(const Model& model, Backend& backend, SessionOptions options = {},
          MoeExecutor* moe = nullptr);

  // Appends tokens to the context and runs them; returns the logits after the last one.
  std::span<const float> eval(std::span<const int32_t> ids);
  // Logits for every position of `ids` appended to the context ([n][V], row-major).
  std::vector<float> eval_all(std::span<const int32_t> ids);
  // Feeds `prompt`, then samples up to max_tokens tokens. Returns the generated tokens (the
  // stop token included when one ended generation). The last generated token is not yet in the
  // context (n_past() excludes it): a caller that continues the conversation feeds it next.
  std::vector<int32_t> generate(std::span<const int32_t> prompt, const GenerateOptions& options,
                                const TokenCallback& on_token = {});

  void reset();
  // Drops the context after the first n tokens (the KV cache rows beyond are simply overwritten).
  void truncate(int n);
  void cancel() { cancelled_.store(true); }
  // The flag cancel() sets: generate() clears it when it starts, callers that evaluate in steps
  // clear it before their first; a MoeExecutor may watch it to stop between layers.
  void clear_cancel() { cancelled_.store(false); }
  const std::atomic<bool>& cancel_flag() const { return cancelled_; }
  int n_past() const { return int(tokens_.size()); }
  int n_ctx() const { return transformer_.n_ctx(); }
  const std::vector<int32_t>& tokens() const { return tokens_; }
  std::span<const float> last_logits() const { return logits_; }
  Transformer& transformer() { return transformer_; }
  // Bytes the session placed on its backend (weights, KV cache, scratch).
  size_t device_bytes() const { return transformer_.device_bytes(); }

 private:
  const Model& model_;
  Transformer transformer_;
  std::vector<int32_t> tokens_;
  std::vector<float> logits_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace cs
