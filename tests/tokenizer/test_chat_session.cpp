// ChatSession end to end on the test chat model (tiny random Qwen3-MoE + a trained SentencePiece
// vocabulary): incremental prefill gives the same reply as a fresh prefill, stop tokens, the
// context window, cancellation, save/load, and Model::load picking up the tokenizer.
#include <doctest/doctest.h>

#include "common/error.h"
#include "runtime/chat/chat_session.h"
#include "runtime/chat/terminal_text.h"
#include "runtime/engine/session.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/common/chat_model.h"
#include "tests/common/fixtures.h"

using namespace cs;

namespace {

struct Rig {
  test::TempDir tmp;
  std::unique_ptr<Model> model;
  std::unique_ptr<Backend> backend = make_cpu_reference_backend();
  std::unique_ptr<Session> session;
  std::unique_ptr<ChatSession> chat;

  explicit Rig(int n_ctx = 256, std::vector<int> extra_stops = {}) {
    model = Model::load(test::make_chat_model(tmp.file("m")));
    SessionOptions so;
    so.transformer.n_ctx = n_ctx;
    session = std::make_unique<Session>(*model, *backend, so);
    ChatOptions co;
    co.sampling.greedy = true;
    co.max_reply_tokens = 6;
    co.system_prompt = "You are a test.";
    TokenizerInfo info = model->tokenizer()->info();
    chat = std::make_unique<ChatSession>(
        *session, *model->tokenizer(), choose_chat_template(info, model->config().model_type), co,
        extra_stops.empty() ? model->config().eos_token_ids : extra_stops);
  }
};

}  // namespace

TEST_CASE("Model::load picks up tokenizer.model and tokenizer_config.json") {
  test::TempDir tmp;
  auto m = Model::load(test::make_chat_model(tmp.file("m")));
  REQUIRE(m->tokenizer());
  CHECK(m->tokenizer()->kind() == "sentencepiece");
  CHECK(m->tokenizer()->info().eos_token == "<|im_end|>");
  auto plain = Model::load(test::fixture("qwen3moe"));  // no tokenizer files: none
  CHECK(plain->tokenizer() == nullptr);
}

TEST_CASE("chat: a reply streams, is kept in the history, and stats are filled") {
  Rig r;
  std::string streamed;
  const ChatTurnStats st = r.chat->send("The model reads the weights.",
                                        [&](ReplyPart, std::string_view t) { streamed += t; });
  CHECK(st.generated_tokens >= 1);
  CHECK(st.generated_tokens <= 6);
  CHECK(st.prompt_tokens > 5);
  CHECK(st.reused_tokens == 0);
  CHECK(st.prefill_tokens == st.prompt_tokens);
  CHECK(st.first_token_seconds > 0);
  REQUIRE(r.chat->messages().size() == 2);
  CHECK(r.chat->messages()[1].role == "assistant");
  const ChatMessage& reply = r.chat->messages()[1];
  CHECK(reply.reasoning + reply.content == streamed);  // what was printed is what was kept
  CHECK(r.chat->context_used() > st.prompt_tokens);
}

TEST_CASE("chat: the second turn evaluates only new tokens and matches a fresh prefill") {
  Rig a;
  a.chat->send("Every token routes two experts.", {});
  const ChatTurnStats st = a.chat->send("The cache loads cold memory?", {});
  CHECK(st.reused_tokens > 0);
  CHECK(st.prefill_tokens < st.prompt_tokens);
  // A fresh session given the same history must produce the same (greedy) reply.
  Rig b;
  std::vector<ChatMessage> history(a.chat->messages().begin(), a.chat->messages().end() - 2);
  b.chat->set_messages(history);
  const ChatTurnStats st_b = b.chat->send("The cache loads cold memory?", {});
  CHECK(st_b.reused_tokens == 0);
  CHECK(st_b.prompt_tokens == st.prompt_tokens);
  CHECK(b.chat->messages().back().content == a.chat->messages().back().content);
  CHECK(b.chat->messages().back().reasoning == a.chat->messages().back().reasoning);
}

TEST_CASE("chat: a stop token ends the reply and is not shown") {
  std::vector<int> all(512);
  for (int i = 0; i < 512; ++i) all[i] = i;  // every token stops: the first one ends the reply
  Rig r(256, all);
  std::string streamed;
  const ChatTurnStats st =
      r.chat->send("Hello", [&](ReplyPart, std::string_view t) { streamed += t; });
  CHECK(st.stop == StopReason::kStopToken);
  CHECK(st.generated_tokens == 1);
  CHECK(streamed.empty());
}

TEST_CASE("chat: a full context window is reported with the way out, and /reset recovers") {
  Rig r(64);
  r.chat->options().max_reply_tokens = 40;
  bool full = false;
  std::string message;
  for (int i = 0; i < 10 && !full; ++i) {
    try {
      const ChatTurnStats st = r.chat->send("The router predicts the next word.", {});
      if (st.stop == StopReason::kContextFull) CHECK(r.chat->context_used() <= 64);
    } catch (const Error& e) {
      full = true;
      message = e.what();
      CHECK(e.kind() == ErrorKind::kContextFull);
    }
  }
  REQUIRE(full);
  CHECK(message.find("context window of 64") != std::string::npos);
  CHECK(message.find("/reset") != std::string::npos);
  const size_t kept = r.chat->messages().size();
  CHECK(kept % 2 == 0);  // the refused user message was not kept
  r.chat->reset();
  CHECK_NOTHROW(r.chat->send("Hi", {}));
}

TEST_CASE("chat: cancel stops the reply in progress and keeps the session usable") {
  Rig r;
  r.chat->options().max_reply_tokens = 50;
  int pieces = 0;
  const ChatTurnStats st = r.chat->send("Tell me a story.", [&](ReplyPart, std::string_view) {
    if (++pieces == 2) r.chat->cancel();
  });
  CHECK(st.stop == StopReason::kCancelled);
  CHECK(st.generated_tokens < 50);
  CHECK(r.chat->messages().size() == 2);
  const ChatTurnStats next = r.chat->send("Go on.", {});
  CHECK(next.stop != StopReason::kCancelled);
}

TEST_CASE("chat: save and load round trip the conversation") {
  Rig r;
  r.chat->send("Hello there.", {});
  r.chat->set_thinking(false);
  const nlohmann::json j = r.chat->to_json();
  CHECK(j["system"] == "You are a test.");
  Rig s;
  s.chat->set_system_prompt("other");
  s.chat->load_json(j, "saved.json");
  CHECK(s.chat->options().system_prompt == "You are a test.");
  CHECK_FALSE(s.chat->options().thinking);
  REQUIRE(s.chat->messages().size() == 2);
  CHECK(s.chat->messages()[1].content == r.chat->messages()[1].content);
  CHECK_THROWS_WITH_AS(s.chat->load_json(nlohmann::json::parse("[{\"role\": 1}]"), "bad.json"),
                       doctest::Contains("bad.json"), Error);
}

TEST_CASE("chat: a conversation the template refuses leaves the history as it was") {
  Rig r;
  TokenizerInfo info;
  ChatSession mistral(*r.session, *r.model->tokenizer(), choose_chat_template(info, "mixtral"),
                      ChatOptions{});
  mistral.set_messages({{"user", "first", "", false}});  // a user turn without its reply
  CHECK_THROWS_WITH_AS(mistral.send("second", {}), doctest::Contains("roles must alternate"),
                       Error);
  CHECK(mistral.messages().size() == 1);
}

TEST_CASE("chat: model text cannot drive the terminal") {
  // Clear screen, cursor home, a window-title OSC, carriage return, DEL and a C1 CSI (U+009B).
  const std::string hostile =
      "a\x1b[2J\x1b[Hb\x1b]0;pwned\x07\rc\x7f d\xc2\x9b"
      "31m";
  const std::string safe = terminal_safe(hostile);
  for (char c : safe) {
    const auto u = static_cast<unsigned char>(c);
    CHECK((u >= 0x20 || u == '\n' || u == '\t'));
    CHECK(u != 0x7f);
  }
  CHECK(safe.find("\xc2\x9b") == std::string::npos);
  CHECK(safe ==
        "a^[[2J^[[Hb^[]0;pwned^G^Mc^? d\xef\xbf\xbd"
        "31m");
  // Ordinary text, newlines, tabs and UTF-8 (C2 followed by a printable continuation) unchanged.
  const std::string ok = "Hello 世界\n\tcafé \xc2\xa9 \xf0\x9f\x98\x80";
  CHECK(terminal_safe(ok) == ok);
}
