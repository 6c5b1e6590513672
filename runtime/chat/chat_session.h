// A conversation with a model: messages, the chat template, incremental prefill (only the tokens
// that differ from what the KV cache already holds are evaluated), streaming of reasoning and
// answer, stop tokens, the context window, cancellation and statistics. The `coldstream chat`
// REPL and the C API are both thin layers over this class.
//
// Thread-safety: one thread drives a ChatSession; cancel() may be called from any thread or a
// signal handler (it only stores to atomics).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/chat/reasoning.h"
#include "runtime/chat/template.h"
#include "runtime/engine/sampler.h"

namespace cs {

class Session;
class Tokenizer;

struct ChatOptions {
  std::string system_prompt;  // empty: no system message
  bool thinking = true;       // Qwen3: let the model reason before answering
  int max_reply_tokens = 1024;
  bool ignore_stop_tokens = false;  // generate past stop tokens (benchmarks, tests)
  SamplingParams sampling;
};

// Why a reply ended.
enum class StopReason { kStopToken, kMaxTokens, kContextFull, kCancelled };
const char* stop_reason_name(StopReason r);

struct ChatTurnStats {
  int prompt_tokens = 0;     // tokens of the whole rendered prompt
  int reused_tokens = 0;     // of those, already in the KV cache from earlier turns
  int prefill_tokens = 0;    // evaluated for this turn: prompt_tokens - reused_tokens
  int generated_tokens = 0;  // the stop token included
  double prefill_seconds = 0, first_token_seconds = 0, decode_seconds = 0;
  StopReason stop = StopReason::kStopToken;
  double prefill_tokens_per_second() const;
  double decode_tokens_per_second() const;  // tokens after the first / time after the first
};

// Thrown (as cs::Error kind kContextFull) when the conversation no longer fits the context.
inline constexpr std::string_view kContextFullHint = "use /reset to start a new conversation";

class ChatSession {
 public:
  using StreamFn = std::function<void(ReplyPart, std::string_view)>;

  // `session` and `tokenizer` must outlive this object. `extra_stop_ids` adds the model's EOS
  // ids (config.json eos_token_id) to the template's own stop tokens.
  ChatSession(Session& session, const Tokenizer& tokenizer, ChatTemplate chat_template,
              ChatOptions options, const std::vector<int>& extra_stop_ids = {});

  // Adds a user message and generates the reply, calling on_text as text becomes printable.
  // The reply (answer and reasoning) is added to the history, also when cancelled. Throws
  // cs::Error (kContextFull) when the conversation does not fit the context window: the user
  // message is then not kept.
  ChatTurnStats send(std::string_view user_text, const StreamFn& on_text);
  // Generates the assistant's reply to the conversation as it stands (the C API adds messages
  // itself). Throws cs::Error (kContextFull) when the prompt does not fit; nothing is added then.
  ChatTurnStats reply(const StreamFn& on_text);
  // Appends a message: "user" or "assistant"; "system" sets the system prompt. Throws cs::Error
  // (kInvalidArgument) for another role.
  void add_message(std::string_view role, std::string_view content);
  // Stops the reply in progress (safe from a signal handler).
  void cancel();

  void reset();  // forgets the conversation (the system prompt stays)
  void set_system_prompt(std::string text);
  void set_thinking(bool on) { options_.thinking = on; }
  ChatOptions& options() { return options_; }
  const ChatOptions& options() const { return options_; }
  const ChatTemplate& chat_template() const { return template_; }
  const std::vector<ChatMessage>& messages() const { return messages_; }
  // The conversation without the system prompt.
  void set_messages(std::vector<ChatMessage> m);

  // {"system": ..., "thinking": ..., "messages": [...]} for /save and /load.
  nlohmann::json to_json() const;
  void load_json(const nlohmann::json& j, std::string_view origin);

  // The whole conversation as the model sees it (system prompt included).
  std::vector<ChatMessage> conversation() const;
  std::vector<int32_t> stop_ids() const { return stop_ids_; }
  int context_used() const;
  int context_size() const;
  const ChatTurnStats& last_stats() const { return last_; }
  // Totals since construction.
  int total_generated() const { return total_generated_; }
  double total_decode_seconds() const { return total_decode_seconds_; }

 private:
  // Runs a step of the session; a cs::Error of kind kCancelled (a cancel seen between layers)
  // marks the reply cancelled and returns false.
  bool run_cancellable(const std::function<void()>& f);

  Session& session_;
  const Tokenizer& tok_;
  ChatTemplate template_;
  ChatOptions options_;
  std::vector<int32_t> stop_ids_;
  std::vector<ChatMessage> messages_;
  std::atomic<bool> cancelled_{false};
  ChatTurnStats last_;
  int total_generated_ = 0;
  double total_decode_seconds_ = 0;
};

}  // namespace cs
