// Token ids and rendered chat templates against Hugging Face references made on the GPU host by
// tools/make_tokenizer_fixtures.py (tokenizers.Tokenizer.encode and transformers'
// apply_chat_template over the real Qwen3 tokenizer files). Until those files are committed in
// tests/fixtures/tokenizer/, this binary exits 77 and CTest reports the test as not run.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "runtime/chat/template.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/common/fixtures.h"
#include "tests/tokenizer/corpus.h"

using namespace cs;

namespace {

nlohmann::json load(const std::string& name) {
  std::ifstream in(test::fixture("tokenizer/" + name));
  return nlohmann::json::parse(in);
}

const Tokenizer& qwen3() {
  static std::unique_ptr<Tokenizer> t = load_tokenizer_dir(test::qwen3_tokenizer_dir());
  return *t;
}

nlohmann::json conversations() {
  std::ifstream in(test::fixture("chat/conversations.json"));
  return nlohmann::json::parse(in)["conversations"];
}

}  // namespace

TEST_CASE("qwen3 ids equal Hugging Face tokenizers on every corpus entry") {
  const nlohmann::json ref = load("qwen3_ids.json")["ids"];
  int compared = 0;
  for (const test::CorpusEntry& e : test::tokenizer_corpus()) {
    CAPTURE(e.name);
    REQUIRE(ref.contains(e.name));
    CHECK(qwen3().encode(e.text) == ref[e.name].get<std::vector<int32_t>>());
    ++compared;
  }
  MESSAGE(compared << " corpus entries compared");
}

TEST_CASE("qwen3 chat template: byte-equal to apply_chat_template, and the same ids") {
  const nlohmann::json rendered = load("qwen3_templates.json")["rendered"];
  const nlohmann::json ids = load("qwen3_template_ids.json")["ids"];
  TokenizerInfo info = qwen3().info();
  const ChatTemplate t = choose_chat_template(info, "qwen3_moe");
  for (const auto& c : conversations()) {
    const std::vector<ChatMessage> m = messages_from_json(c["messages"], "conversations.json");
    for (bool th : c["thinking"].get<std::vector<bool>>()) {
      const std::string key = c["name"].get<std::string>() + (th ? "|true" : "|false");
      if (!rendered.contains(key)) continue;
      CAPTURE(key);
      const std::string text = t.render(m, c["add_generation_prompt"].get<bool>(), th);
      CHECK(text == rendered[key].get<std::string>());
      CHECK(qwen3().encode(text) == ids[key].get<std::vector<int32_t>>());
    }
  }
}

TEST_CASE("mixtral chat template: byte-equal to apply_chat_template, refusals included") {
  const nlohmann::json rendered = load("mixtral_templates.json")["rendered"];
  TokenizerInfo info;
  info.bos_token = "<s>";
  info.eos_token = "</s>";
  const ChatTemplate t = choose_chat_template(info, "mixtral");
  for (const auto& c : conversations()) {
    const std::string name = c["name"].get<std::string>();
    if (!rendered.contains(name)) continue;
    CAPTURE(name);
    const std::string want = rendered[name].get<std::string>();
    const std::vector<ChatMessage> m = messages_from_json(c["messages"], "conversations.json");
    if (want.rfind("ERROR: ", 0) == 0) {
      CHECK_THROWS_AS(t.render(m), Error);
    } else {
      CHECK(t.render(m) == want);
    }
  }
}

int main(int argc, char** argv) {
  for (const char* f : {"qwen3_ids.json", "qwen3_templates.json", "qwen3_template_ids.json",
                        "mixtral_templates.json"}) {
    const std::string p = test::fixture(std::string("tokenizer/") + f);
    if (!std::filesystem::exists(p)) {
      std::printf(
          "pending: %s is missing. Run on the GPU host: python3 tools/make_tokenizer_fixtures.py "
          "build/testdata/qwen3-tokenizer tests/fixtures/tokenizer\n",
          p.c_str());
      return 77;
    }
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
