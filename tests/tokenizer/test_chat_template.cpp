// Chat templates against expected text (the same strings transformers renders; the full set of
// fixture comparisons is in reference/reference_tests.cpp), and how a template is chosen.
#include <doctest/doctest.h>

#include "common/error.h"
#include "runtime/chat/reasoning.h"
#include "runtime/chat/template.h"
#include "runtime/tokenizer/tokenizer.h"

using namespace cs;

namespace {

ChatTemplate qwen3() {
  TokenizerInfo info;
  return choose_chat_template(info, "qwen3_moe");
}

ChatTemplate mistral() {
  TokenizerInfo info;
  return choose_chat_template(info, "mixtral");
}

ChatMessage msg(std::string role, std::string content) {
  return {role, content, "", false};
}

}  // namespace

TEST_CASE("qwen3: system prompt, generation prompt, thinking off") {
  const std::vector<ChatMessage> m = {msg("system", "Be brief."), msg("user", "Hi")};
  CHECK(qwen3().render(m) ==
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n");
  CHECK(qwen3().render(m, true, false) ==
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n");
  CHECK(qwen3().render(m, false) ==
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
}

TEST_CASE("qwen3: earlier assistant turns lose their reasoning; the last one keeps it") {
  std::vector<ChatMessage> m = {
      msg("user", "2+2?"), msg("assistant", "<think>\nadd\n</think>\n\n4"), msg("user", "3+3?")};
  CHECK(qwen3().render(m) ==
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
        "<|im_start|>user\n3+3?<|im_end|>\n<|im_start|>assistant\n");
  ChatMessage last{"assistant", "\n\nRayleigh scattering.", "\nShort wavelengths scatter more.\n",
                   true};
  m = {msg("user", "Why is the sky blue?"), last};
  CHECK(qwen3().render(m, false) ==
        "<|im_start|>user\nWhy is the sky blue?<|im_end|>\n<|im_start|>assistant\n<think>\n"
        "Short wavelengths scatter more.\n</think>\n\nRayleigh scattering.<|im_end|>\n");
  // After a tool response the last real query is earlier: reasoning after it is kept.
  m = {msg("user", "A?"),
       {"assistant", "a", "first", true},
       msg("user", "B?"),
       {"assistant", "b", "second", true},
       msg("user", "<tool_response>\nx\n</tool_response>"),
       {"assistant", "c", "third", true}};
  CHECK(qwen3().render(m) ==
        "<|im_start|>user\nA?<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n<|im_start|>user\n"
        "B?<|im_end|>\n<|im_start|>assistant\n<think>\nsecond\n</think>\n\nb<|im_end|>\n"
        "<|im_start|>user\n<tool_response>\nx\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
        "<think>\nthird\n</think>\n\nc<|im_end|>\n<|im_start|>assistant\n");
}

TEST_CASE("qwen3: tool messages are grouped into one user turn") {
  const std::vector<ChatMessage> m = {msg("user", "Weather?"), msg("assistant", "Checking."),
                                      msg("tool", "{\"t\": 21}"), msg("tool", "{\"s\": 1}")};
  CHECK(qwen3().render(m) ==
        "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\nChecking.<|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n{\"t\": 21}\n</tool_response>\n<tool_response>\n"
        "{\"s\": 1}\n</tool_response><|im_end|>\n<|im_start|>assistant\n");
}

TEST_CASE("mistral: [INST] turns, system folded into the first, roles must alternate") {
  const std::vector<ChatMessage> m = {msg("system", "S"), msg("user", "Hi"),
                                      msg("assistant", "Hello!"), msg("user", "Bye")};
  CHECK(mistral().render(m) == "<s> [INST] S\n\nHi [/INST] Hello!</s> [INST] Bye [/INST]");
  CHECK(mistral().render({msg("user", "x")}) == "<s> [INST] x [/INST]");
  CHECK_THROWS_WITH_AS(mistral().render({msg("user", "a"), msg("user", "b")}),
                       doctest::Contains("roles must alternate"), Error);
  CHECK_THROWS_WITH_AS(mistral().render({msg("user", "a"), msg("tool", "b")}),
                       doctest::Contains("Only user and assistant roles are supported"), Error);
  CHECK_THROWS_AS(mistral().render({}), Error);
}

TEST_CASE("the template is chosen from the template text, else the model type") {
  TokenizerInfo info;
  info.origin = "m/tokenizer.json";
  info.chat_template = "{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}";
  CHECK(choose_chat_template(info, "mixtral").family == TemplateFamily::kQwen3);
  info.chat_template = "{{ bos_token }}[INST] {{ m }} [/INST]";
  info.bos_token = "<s>";
  info.eos_token = "</s>";
  const ChatTemplate t = choose_chat_template(info, "qwen3_moe");
  CHECK(t.family == TemplateFamily::kMistral);
  CHECK(t.eos_token == "</s>");
  info.chat_template.clear();
  CHECK(choose_chat_template(info, "qwen3_moe").family == TemplateFamily::kQwen3);
  CHECK_THROWS_WITH_AS(choose_chat_template(info, "llama"), doctest::Contains("m/tokenizer.json"),
                       Error);
}

TEST_CASE("messages from JSON: roles, reasoning_content and errors naming the file") {
  const auto j = nlohmann::json::parse(
      R"([{"role": "user", "content": "hi"},
          {"role": "assistant", "content": "yo", "reasoning_content": "think"}])");
  const auto m = messages_from_json(j, "f.json");
  REQUIRE(m.size() == 2);
  CHECK(m[1].has_reasoning);
  CHECK(m[1].reasoning == "think");
  CHECK(messages_to_json(m) == j);
  CHECK_THROWS_WITH_AS(messages_from_json(nlohmann::json::parse(R"([{"role": "user"}])"), "f.json"),
                       doctest::Contains("f.json: message 0 has no 'content'"), Error);
  CHECK_THROWS_WITH_AS(
      messages_from_json(nlohmann::json::parse(R"([{"role": "user", "content": 3}])"), "f.json"),
      doctest::Contains("must be a string"), Error);
  CHECK_THROWS_WITH_AS(messages_from_json(nlohmann::json::parse(R"({"x": 1})"), "f.json"),
                       doctest::Contains("expected a JSON array"), Error);
}

TEST_CASE("reasoning splitter: tags across any piece boundary, never printed") {
  const std::string reply = "<think>\nstep one\n\nstep two\n</think>\n\nThe answer.";
  for (size_t cut = 0; cut <= reply.size(); ++cut)
    for (size_t cut2 = cut; cut2 <= reply.size(); cut2 += 7) {
      std::string r, a;
      ReasoningSplitter s(
          [&](ReplyPart p, std::string_view t) { (p == ReplyPart::kReasoning ? r : a) += t; });
      s.push(reply.substr(0, cut));
      s.push(reply.substr(cut, cut2 - cut));
      s.push(reply.substr(cut2));
      s.finish();
      REQUIRE(r == "step one\n\nstep two");
      REQUIRE(a == "The answer.");
      REQUIRE(s.saw_reasoning());
    }
  std::string a;
  ReasoningSplitter plain([&](ReplyPart, std::string_view t) { a += t; });
  plain.push("<thin");
  plain.push("g> is not a tag");
  plain.finish();
  CHECK(a == "<thing> is not a tag");
  CHECK_FALSE(plain.saw_reasoning());
  std::string r2;
  ReasoningSplitter cut([&](ReplyPart p, std::string_view t) {
    if (p == ReplyPart::kReasoning) r2 += t;
  });
  cut.push("<think>\nunfinished thought");
  cut.finish();
  CHECK(r2 == "unfinished thought");
}
