#include "runtime/chat/chat_session.h"

#include <algorithm>
#include <chrono>

#include "common/error.h"
#include "runtime/engine/session.h"
#include "runtime/tokenizer/sentencepiece.h"
#include "runtime/tokenizer/stream_decoder.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cs {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Prefill in chunks so a cancel during a long prompt takes effect between chunks.
constexpr size_t kPrefillChunk = 128;

}  // namespace

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::kStopToken:
      return "stop token";
    case StopReason::kMaxTokens:
      return "max tokens";
    case StopReason::kContextFull:
      return "context full";
    case StopReason::kCancelled:
      return "cancelled";
  }
  return "?";
}

double ChatTurnStats::prefill_tokens_per_second() const {
  return prefill_seconds > 0 ? prefill_tokens / prefill_seconds : 0;
}

double ChatTurnStats::decode_tokens_per_second() const {
  return decode_seconds > 0 && generated_tokens > 1 ? (generated_tokens - 1) / decode_seconds : 0;
}

ChatSession::ChatSession(Session& session, const Tokenizer& tokenizer, ChatTemplate chat_template,
                         ChatOptions options, const std::vector<int>& extra_stop_ids)
    : session_(session),
      tok_(tokenizer),
      template_(std::move(chat_template)),
      options_(std::move(options)) {
  auto add = [&](int32_t id) {
    if (id >= 0 && std::find(stop_ids_.begin(), stop_ids_.end(), id) == stop_ids_.end())
      stop_ids_.push_back(id);
  };
  for (const char* piece : {"<|im_end|>", "<|endoftext|>", "</s>"})
    if (auto id = tok_.token_id(piece)) add(*id);
  if (!template_.eos_token.empty())
    if (auto id = tok_.token_id(template_.eos_token)) add(*id);
  if (!tok_.info().eos_token.empty())
    if (auto id = tok_.token_id(tok_.info().eos_token)) add(*id);
  for (int id : extra_stop_ids) add(id);
}

bool ChatSession::run_cancellable(const std::function<void()>& f) {
  try {
    f();
    return true;
  } catch (const Error& e) {
    // Stopped between layers (SessionRuntime): the session's context is as before the step.
    if (e.kind() != ErrorKind::kCancelled) throw;
    cancelled_.store(true);
    return false;
  }
}

void ChatSession::cancel() {
  cancelled_.store(true);
  session_.cancel();
}

void ChatSession::reset() {
  messages_.clear();
}

void ChatSession::set_system_prompt(std::string text) {
  options_.system_prompt = std::move(text);
}

void ChatSession::set_messages(std::vector<ChatMessage> m) {
  messages_ = std::move(m);
}

std::vector<ChatMessage> ChatSession::conversation() const {
  std::vector<ChatMessage> all;
  all.reserve(messages_.size() + 1);
  if (!options_.system_prompt.empty()) all.push_back({"system", options_.system_prompt, "", false});
  all.insert(all.end(), messages_.begin(), messages_.end());
  return all;
}

int ChatSession::context_used() const {
  return session_.n_past();
}
int ChatSession::context_size() const {
  return session_.n_ctx();
}

void ChatSession::add_message(std::string_view role, std::string_view content) {
  if (role == "system")
    options_.system_prompt = std::string(content);
  else if (role == "user" || role == "assistant")
    messages_.push_back({std::string(role), std::string(content), "", false});
  else
    fail(ErrorKind::kInvalidArgument, "role '{}' is not system, user or assistant", role);
}

ChatTurnStats ChatSession::send(std::string_view user_text, const StreamFn& on_text) {
  messages_.push_back({"user", std::string(user_text), "", false});
  try {
    return reply(on_text);
  } catch (...) {
    // A conversation the template refuses, or one that no longer fits, keeps its previous state.
    messages_.pop_back();
    throw;
  }
}

ChatTurnStats ChatSession::reply(const StreamFn& on_text) {
  cancelled_.store(false);
  session_.clear_cancel();
  const std::string prompt_text =
      template_.render(conversation(), /*add_generation_prompt=*/true, options_.thinking);
  std::vector<int32_t> prompt;
  if (tok_.info().add_bos && tok_.bos_id() >= 0 && !prompt_text.starts_with(tok_.info().bos_token))
    prompt.push_back(tok_.bos_id());
  const std::vector<int32_t> enc = tok_.encode(prompt_text, /*parse_special=*/true);
  prompt.insert(prompt.end(), enc.begin(), enc.end());
  const int n_ctx = session_.n_ctx();
  if (int(prompt.size()) + 1 > n_ctx) {
    fail(ErrorKind::kContextFull,
         "the conversation ({} tokens with this message) no longer fits the context window of {} "
         "tokens; {}",
         prompt.size(), n_ctx, kContextFullHint);
  }

  ChatTurnStats st;
  st.prompt_tokens = int(prompt.size());
  // Keep the longest prefix the KV cache already holds; evaluate at least one token so the
  // logits are those of the prompt's last position.
  const std::vector<int32_t>& have = session_.tokens();
  size_t common = 0;
  while (common < have.size() && common < prompt.size() && have[common] == prompt[common]) ++common;
  if (common == prompt.size()) --common;
  session_.truncate(int(common));
  st.reused_tokens = int(common);
  st.prefill_tokens = int(prompt.size() - common);

  const auto t0 = Clock::now();
  for (size_t i = common; i < prompt.size() && !cancelled_.load(); i += kPrefillChunk) {
    const size_t n = std::min(kPrefillChunk, prompt.size() - i);
    if (!run_cancellable([&] { session_.eval(std::span<const int32_t>(prompt.data() + i, n)); }))
      break;
  }
  st.prefill_seconds = seconds_since(t0);

  const auto* sp = dynamic_cast<const SentencePieceTokenizer*>(&tok_);
  StreamDecoder decoder(tok_, /*skip_special=*/true, sp && sp->adds_dummy_prefix());
  ReasoningSplitter splitter([&](ReplyPart part, std::string_view text) {
    if (on_text) on_text(part, text);
  });
  if (cancelled_.load()) {
    // Cancelled during prefill: the partial prompt stays in the cache and is reused next time.
    st.stop = StopReason::kCancelled;
    messages_.push_back({"assistant", "", "", false});
    last_ = st;
    return st;
  }

  GenerateOptions g;
  g.sampling = options_.sampling;
  if (!options_.ignore_stop_tokens) g.stop_tokens = stop_ids_;
  const int room = n_ctx - session_.n_past();
  g.max_tokens = std::max(1, std::min(options_.max_reply_tokens, room));
  bool stopped_by_token = false;
  Clock::time_point first{};
  const auto t1 = Clock::now();
  std::vector<int32_t> generated;
  run_cancellable([&] {
    generated = session_.generate({}, g, [&](int32_t t) {
      if (st.generated_tokens++ == 0) {
        first = Clock::now();
        st.first_token_seconds = st.prefill_seconds + seconds_since(t1);
      }
      if (!options_.ignore_stop_tokens &&
          std::find(stop_ids_.begin(), stop_ids_.end(), t) != stop_ids_.end()) {
        stopped_by_token = true;
        return false;
      }
      splitter.push(decoder.push(t));
      return !cancelled_.load();
    });
  });
  splitter.push(decoder.flush());
  splitter.finish();
  if (st.generated_tokens > 0) st.decode_seconds = seconds_since(first);
  if (stopped_by_token)
    st.stop = StopReason::kStopToken;
  else if (cancelled_.load())
    st.stop = StopReason::kCancelled;
  else if (int(generated.size()) >= g.max_tokens && g.max_tokens == room)
    st.stop = StopReason::kContextFull;
  else
    st.stop = StopReason::kMaxTokens;

  ChatMessage reply{"assistant", splitter.answer(), splitter.reasoning(), false};
  reply.has_reasoning = splitter.saw_reasoning();
  messages_.push_back(std::move(reply));
  total_generated_ += st.generated_tokens;
  total_decode_seconds_ += st.decode_seconds;
  last_ = st;
  return st;
}

nlohmann::json ChatSession::to_json() const {
  return {{"format", "coldstream-chat-1"},
          {"template", template_.name()},
          {"system", options_.system_prompt},
          {"thinking", options_.thinking},
          {"messages", messages_to_json(messages_)}};
}

void ChatSession::load_json(const nlohmann::json& j, std::string_view origin) {
  std::vector<ChatMessage> ms = messages_from_json(j, origin);
  std::string system = options_.system_prompt;
  if (j.is_object()) {
    if (auto it = j.find("system"); it != j.end() && it->is_string())
      system = it->get<std::string>();
    if (auto it = j.find("thinking"); it != j.end() && it->is_boolean())
      options_.thinking = it->get<bool>();
  }
  // A leading system message in the list is the system prompt.
  if (!ms.empty() && ms[0].role == "system") {
    system = ms[0].content;
    ms.erase(ms.begin());
  }
  options_.system_prompt = std::move(system);
  messages_ = std::move(ms);
}

}  // namespace cs
