// The C API: sessions (chat level, token level, cancellation, statistics) over the same
// SessionRuntime and ChatSession as `coldstream chat`.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <span>

#include "runtime/capi/capi_internal.h"
#include "runtime/chat/template.h"
#include "runtime/tokenizer/tokenizer.h"

using namespace cs;
using namespace cs::capi;

namespace {

// Prefill and cs_session_eval run in chunks so a cancel takes effect between them.
constexpr size_t kEvalChunk = 128;

SamplingParams to_sampling(const cs_sampling_params& p) {
  SamplingParams s;
  s.greedy = p.temperature <= 0.0f;
  s.temperature = p.temperature;
  s.top_k = p.top_k;
  s.top_p = p.top_p;
  s.min_p = p.min_p;
  s.repetition_penalty = p.repetition_penalty;
  s.seed = p.seed;
  return s;
}

void check_sampling(const cs_sampling_params& p, const char* fn) {
  require(p.temperature >= 0.0f, fn, "params.temperature is negative");
  require(p.top_k >= 0, fn, "params.top_k is negative");
  require(p.top_p > 0.0f && p.top_p <= 1.0f, fn, "params.top_p is not in (0, 1]");
  require(p.min_p >= 0.0f && p.min_p <= 1.0f, fn, "params.min_p is not in [0, 1]");
  require(p.repetition_penalty > 0.0f, fn, "params.repetition_penalty is not positive");
  require(p.max_tokens > 0, fn, "params.max_tokens is not positive");
  require(p.ignore_stop_tokens == 0 || p.ignore_stop_tokens == 1, fn,
          "params.ignore_stop_tokens is not 0 or 1");
}

bool same_sampling(const cs_sampling_params& a, const cs_sampling_params& b) {
  return a.temperature == b.temperature && a.top_k == b.top_k && a.top_p == b.top_p &&
         a.min_p == b.min_p && a.repetition_penalty == b.repetition_penalty && a.seed == b.seed;
}

ChatSession& chat_of(cs_session* s, const char* fn) {
  require(s != nullptr, fn, "session is NULL");
  if (!s->chat)
    fail(ErrorKind::kUnsupported,
         "{}: {} has no tokenizer; only the token-level functions work on it", fn,
         s->model->model->path());
  return *s->chat;
}

}  // namespace

extern "C" {

cs_session_params cs_session_default_params(void) {
  cs_session_params p;
  std::memset(&p, 0, sizeof p);
  p.size = sizeof p;
  p.thinking = 1;
  return p;
}

cs_sampling_params cs_sampling_default_params(void) {
  cs_sampling_params p;
  std::memset(&p, 0, sizeof p);
  p.size = sizeof p;
  p.temperature = 0.7f;
  p.top_k = 20;
  p.top_p = 0.8f;
  p.min_p = 0.0f;
  p.repetition_penalty = 1.0f;
  p.seed = 0;
  p.max_tokens = 512;
  return p;
}

cs_status cs_session_new(cs_model* model, const cs_session_params* params,
                         cs_session** out_session) {
  static constexpr const char* fn = "cs_session_new";
  return guard(fn, [&] {
    require(out_session != nullptr, fn, "out_session is NULL");
    *out_session = nullptr;
    require(model != nullptr, fn, "model is NULL");
    const cs_session_params p =
        params_or_default(params, cs_session_default_params(), fn, "cs_session_params");
    require(p.n_ctx >= 0, fn, "params.n_ctx is negative");
    require(p.thinking == 0 || p.thinking == 1, fn, "params.thinking is not 0 or 1");
    auto s = std::make_unique<cs_session>();
    s->model = model;
    const Model& m = *model->model;
    s->rt = std::make_unique<SessionRuntime>(m, model->config, p.n_ctx);
    if (const Tokenizer* tok = m.tokenizer()) {
      ChatOptions co;
      co.system_prompt = p.system_prompt ? p.system_prompt : "";
      co.thinking = p.thinking != 0;
      s->chat = std::make_unique<ChatSession>(
          s->rt->session(), *tok, choose_chat_template(tok->info(), m.config().model_type), co,
          m.config().eos_token_ids);
    }
    model->sessions.fetch_add(1);
    *out_session = s.release();
    return CS_OK;
  });
}

void cs_session_free(cs_session* session) {
  if (!session) return;
  session->model->sessions.fetch_sub(1);
  delete session;
}

cs_status cs_session_add_message(cs_session* session, const char* role, const char* content) {
  static constexpr const char* fn = "cs_session_add_message";
  return guard(fn, [&] {
    ChatSession& chat = chat_of(session, fn);
    require(role != nullptr, fn, "role is NULL");
    require(content != nullptr, fn, "content is NULL");
    chat.add_message(role, content);
    return CS_OK;
  });
}

cs_status cs_session_set_thinking(cs_session* session, int enabled) {
  static constexpr const char* fn = "cs_session_set_thinking";
  return guard(fn, [&] {
    chat_of(session, fn).set_thinking(enabled != 0);
    return CS_OK;
  });
}

cs_status cs_session_render(const cs_session* session, char* text, size_t capacity,
                            size_t* length) {
  static constexpr const char* fn = "cs_session_render";
  return guard(fn, [&] {
    const ChatSession& chat = chat_of(const_cast<cs_session*>(session), fn);
    const std::string prompt = chat.chat_template().render(
        chat.conversation(), /*add_generation_prompt=*/true, chat.options().thinking);
    return copy_out(prompt, text, capacity, length, fn);
  });
}

cs_status cs_session_generate(cs_session* session, const cs_sampling_params* params,
                              cs_text_fn on_text, void* user_data) {
  static constexpr const char* fn = "cs_session_generate";
  return guard(fn, [&] {
    ChatSession& chat = chat_of(session, fn);
    const cs_sampling_params p =
        params_or_default(params, cs_sampling_default_params(), fn, "cs_sampling_params");
    check_sampling(p, fn);
    chat.options().sampling = to_sampling(p);
    chat.options().max_reply_tokens = p.max_tokens;
    chat.options().ignore_stop_tokens = p.ignore_stop_tokens != 0;
    bool stopped = false;  // the callback said stop: it hears nothing more
    ChatTurnStats st;
    try {
      st = chat.reply([&](ReplyPart part, std::string_view text) {
        if (stopped || !on_text) return;
        if (on_text(text.data(), text.size(), part == ReplyPart::kReasoning, user_data) != 0) {
          stopped = true;
          chat.cancel();
        }
      });
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kContextFull) throw;
      // The chat's message names the REPL's /reset; name the API's way out.
      std::string msg = e.what();
      if (const size_t at = msg.find(kContextFullHint); at != std::string::npos)
        msg.replace(at, kContextFullHint.size(), "cs_session_reset starts over");
      return set_error(CS_ERR_CONTEXT_FULL, std::string(fn) + ": " + msg);
    }
    switch (st.stop) {
      case StopReason::kCancelled:
        return set_error(
            CS_ERR_CANCELLED,
            fmt::format("{}: stopped by {} after {} tokens", fn,
                        stopped ? "the callback" : "cs_session_cancel", st.generated_tokens));
      case StopReason::kContextFull:
        return set_error(CS_ERR_CONTEXT_FULL,
                         fmt::format("{}: the context window of {} tokens is full; "
                                     "cs_session_reset starts over",
                                     fn, chat.context_size()));
      default:
        return CS_OK;
    }
  });
}

cs_status cs_session_reset(cs_session* session) {
  static constexpr const char* fn = "cs_session_reset";
  return guard(fn, [&] {
    require(session != nullptr, fn, "session is NULL");
    if (session->chat) session->chat->reset();
    session->rt->session().reset();
    session->sampler.reset();
    return CS_OK;
  });
}

void cs_session_cancel(cs_session* session) {
  if (!session) return;
  session->cancelled.store(true);
  if (session->chat)
    session->chat->cancel();
  else
    session->rt->session().cancel();
}

cs_status cs_session_eval(cs_session* session, const int32_t* tokens, size_t n_tokens) {
  static constexpr const char* fn = "cs_session_eval";
  return guard(fn, [&] {
    require(session != nullptr, fn, "session is NULL");
    require(tokens != nullptr, fn, "tokens is NULL");
    require(n_tokens > 0, fn, "n_tokens is 0");
    session->cancelled.store(false);
    Session& s = session->rt->session();
    s.clear_cancel();
    const int V = session->model->model->config().vocab_size;
    for (size_t i = 0; i < n_tokens; ++i)
      if (tokens[i] < 0 || tokens[i] >= V)
        fail(ErrorKind::kInvalidArgument,
             "{}: token {} at index {} is outside the vocabulary (0 .. {})", fn, tokens[i], i,
             V - 1);
    if (size_t(s.n_past()) + n_tokens > size_t(s.n_ctx()))
      fail(ErrorKind::kContextFull,
           "{}: {} tokens after the {} in context do not fit the context window of {}", fn,
           n_tokens, s.n_past(), s.n_ctx());
    for (size_t i = 0; i < n_tokens; i += kEvalChunk) {
      if (session->cancelled.load())
        return set_error(CS_ERR_CANCELLED,
                         fmt::format("{}: cancelled after {} of {} tokens", fn, i, n_tokens));
      s.eval(std::span<const int32_t>(tokens + i, std::min(kEvalChunk, n_tokens - i)));
    }
    return CS_OK;
  });
}

cs_status cs_session_logits(const cs_session* session, const float** logits, size_t* n_vocab) {
  static constexpr const char* fn = "cs_session_logits";
  return guard(fn, [&] {
    require(session != nullptr, fn, "session is NULL");
    require(logits != nullptr, fn, "logits is NULL");
    require(n_vocab != nullptr, fn, "n_vocab is NULL");
    const std::span<const float> l = session->rt->session().last_logits();
    if (l.empty()) fail(ErrorKind::kInvalidArgument, "{}: nothing evaluated yet", fn);
    *logits = l.data();
    *n_vocab = l.size();
    return CS_OK;
  });
}

cs_status cs_session_sample(cs_session* session, const cs_sampling_params* params, int32_t* token) {
  static constexpr const char* fn = "cs_session_sample";
  return guard(fn, [&] {
    require(session != nullptr, fn, "session is NULL");
    require(token != nullptr, fn, "token is NULL");
    const cs_sampling_params p =
        params_or_default(params, cs_sampling_default_params(), fn, "cs_sampling_params");
    check_sampling(p, fn);
    const Session& s = session->rt->session();
    if (s.last_logits().empty())
      fail(ErrorKind::kInvalidArgument, "{}: nothing evaluated yet (cs_session_eval first)", fn);
    if (!session->sampler || !same_sampling(p, session->sampler_params)) {
      session->sampler.emplace(to_sampling(p));
      session->sampler_params = p;
    }
    *token = session->sampler->sample(s.last_logits(), s.tokens());
    return CS_OK;
  });
}

cs_status cs_session_tokens(const cs_session* session, int32_t* tokens, size_t capacity,
                            size_t* n_past) {
  static constexpr const char* fn = "cs_session_tokens";
  return guard(fn, [&] {
    require(session != nullptr, fn, "session is NULL");
    require(n_past != nullptr, fn, "n_past is NULL");
    require(tokens != nullptr || capacity == 0, fn, "tokens is NULL but capacity is not 0");
    const std::vector<int32_t>& t = session->rt->session().tokens();
    *n_past = t.size();
    if (!tokens) return CS_OK;
    if (t.size() > capacity)
      return set_error(
          CS_ERR_BUFFER_TOO_SMALL,
          fmt::format("{}: {} tokens do not fit a buffer of {}", fn, t.size(), capacity));
    std::copy(t.begin(), t.end(), tokens);
    return CS_OK;
  });
}

cs_status cs_session_get_stats(cs_session* session, cs_stats* out_stats) {
  static constexpr const char* fn = "cs_session_get_stats";
  return guard(fn, [&] {
    require(session != nullptr, fn, "session is NULL");
    require(out_stats != nullptr, fn, "out_stats is NULL");
    if (out_stats->size != sizeof(cs_stats))
      fail(ErrorKind::kInvalidArgument,
           "{}: out_stats->size is {} but this library's cs_stats has {} bytes", fn,
           out_stats->size, sizeof(cs_stats));
    cs_stats st;
    std::memset(&st, 0, sizeof st);
    st.size = sizeof st;
    if (session->chat) {
      const ChatTurnStats& t = session->chat->last_stats();
      st.prefill_tokens_per_s = t.prefill_tokens_per_second();
      st.decode_tokens_per_s = t.decode_tokens_per_second();
      st.time_to_first_token_s = t.first_token_seconds;
      st.prompt_tokens = t.prompt_tokens;
      st.reused_tokens = t.reused_tokens;
      st.generated_tokens = t.generated_tokens;
    }
    const Session& s = session->rt->session();
    st.context_used = s.n_past();
    st.context_size = s.n_ctx();
    if (const OffloadTelemetry* o = session->rt->telemetry()) {
      const StepTelemetry& t = o->total;
      st.offload_active = 1;
      st.expert_uses = t.expert_uses;
      st.expert_hit_rate = t.hit_rate();
      st.bytes_from_ram = t.bytes_host_to_gpu;
      st.bytes_from_disk = t.bytes_nvme_to_host;
      st.stall_s = t.stall_seconds;
      st.predictor_precision = t.prediction.precision();
      st.predictor_recall = t.prediction.recall();
    }
    const RuntimeMemory m = session->rt->memory();
    st.gpu_memory_bytes = m.device_bytes;
    st.host_memory_bytes = m.host_expert_bytes;
    *out_stats = st;
    return CS_OK;
  });
}

}  // extern "C"
