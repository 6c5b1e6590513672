// Byte-level BPE on the real Qwen3 vocabulary (fetched by scripts/fetch-test-data.sh): known ids,
// special tokens, round trips, the gguf-vocab blob, speed guards and bad input. The comparison with
// Hugging Face tokenizers over the whole corpus is in reference/reference_tests.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "runtime/tokenizer/bpe.h"
#include "runtime/tokenizer/gguf_vocab.h"
#include "runtime/tokenizer/hf_json.h"
#include "runtime/tokenizer/pretokenizer.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/utf8.h"
#include "tests/common/fixtures.h"
#include "tests/tokenizer/corpus.h"

using namespace cs;

namespace {

const Tokenizer& qwen3() {
  static std::unique_ptr<Tokenizer> t = load_tokenizer_dir(test::qwen3_tokenizer_dir());
  return *t;
}

std::vector<int32_t> ids(std::initializer_list<int32_t> l) {
  return l;
}

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The gguf-vocab blob llama.cpp's converter would write for this tokenizer.json: tokens padded to
// the embedding rows with [PADn] (unused), added tokens as control or user-defined.
GgufVocab gguf_from_tokenizer_json(const std::string& dir, int32_t padded_to) {
  const std::string text = read(dir + "/tokenizer.json");
  BpeSpec spec = parse_hf_tokenizer_json(text, "tokenizer.json");
  GgufVocab v;
  v.model = "gpt2";
  v.pre = "qwen2";
  v.tokens = spec.tokens;
  v.token_type.assign(v.tokens.size(), int32_t(GgufTokenType::kNormal));
  v.tokens.resize(size_t(padded_to));
  v.token_type.resize(size_t(padded_to), int32_t(GgufTokenType::kUnused));
  for (int32_t i = int32_t(spec.tokens.size()); i < padded_to; ++i)
    v.tokens[i] = "[PAD" + std::to_string(i) + "]";
  for (const AddedToken& a : spec.added) {
    v.tokens[a.id] = a.content;
    v.token_type[a.id] = int32_t(a.special ? GgufTokenType::kControl : GgufTokenType::kUserDefined);
  }
  v.merges = spec.merges;
  v.eos_token_id = 151645;
  v.padding_token_id = 151643;
  v.bos_token_id = 151643;
  v.add_bos_token = false;
  v.chat_template = "{{ '<|im_start|>' }}";
  return v;
}

}  // namespace

TEST_CASE("qwen3: known ids (cross-checked with transformers.js and Qwen's documentation)") {
  const Tokenizer& t = qwen3();
  CHECK(t.kind() == "bpe");
  CHECK(t.vocab_size() == 151669);
  CHECK(t.bos_id() == -1);
  CHECK(t.encode("Hello, my dog is cute") == ids({9707, 11, 847, 5562, 374, 18838}));
  CHECK(t.encode("<|im_start|>user\nhi<|im_end|>") == ids({151644, 872, 198, 6023, 151645}));
  CHECK(t.encode("").empty());
  CHECK(t.encode(" ") == ids({220}));
  CHECK(t.encode("\n\n") == ids({271}));
  CHECK(t.encode("12345") == ids({16, 17, 18, 19, 20}));  // digits split one by one
}

TEST_CASE("qwen3: special tokens are matched first; parse_special=false leaves them as text") {
  const Tokenizer& t = qwen3();
  CHECK(t.token_id("<|im_end|>") == 151645);
  CHECK(t.token_id("<|endoftext|>") == 151643);
  CHECK(t.token_id("<think>") == 151667);
  CHECK(t.token_id("</think>") == 151668);
  CHECK(t.is_special(151645));
  CHECK_FALSE(t.is_special(151667));  // <think> is an added token, not a special one
  CHECK_FALSE(t.is_special(872));
  CHECK(t.token_bytes(151645) == "<|im_end|>");
  const std::vector<int32_t> parsed = t.encode("a<|im_end|>b");
  CHECK(parsed.size() == 3);
  CHECK(parsed[1] == 151645);
  const std::vector<int32_t> plain = t.encode("a<|im_end|>b", false);
  CHECK(std::find(plain.begin(), plain.end(), 151645) == plain.end());
  CHECK(t.decode(plain) == "a<|im_end|>b");
  // Non-special added tokens are still matched (as Hugging Face does with split_special_tokens).
  const std::vector<int32_t> think = t.encode("<think>x</think>", false);
  CHECK(think.front() == 151667);
  CHECK(think.back() == 151668);
}

TEST_CASE("qwen3: decode(encode(text)) is the NFC text for every corpus entry") {
  const Tokenizer& t = qwen3();
  for (const test::CorpusEntry& e : test::tokenizer_corpus()) {
    CAPTURE(e.name);
    const std::vector<int32_t> enc = t.encode(e.text);
    for (int32_t id : enc) REQUIRE((id >= 0 && id < t.vocab_size()));
    CHECK(t.decode(enc) == utf8::nfc(utf8::sanitize(e.text)));
  }
}

TEST_CASE("qwen3: encoding is the same from many threads at once") {
  const Tokenizer& t = qwen3();
  const auto corpus = test::tokenizer_corpus();
  std::vector<std::vector<int32_t>> want;
  for (const auto& e : corpus) want.push_back(t.encode(e.text));
  std::vector<int> bad(4, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 3; ++rep)
        for (size_t i = 0; i < corpus.size(); ++i)
          if (t.encode(corpus[i].text) != want[i]) ++bad[k];
    });
  for (auto& th : threads) th.join();
  CHECK(bad == std::vector<int>(4, 0));
}

TEST_CASE("qwen3: loading stays fast (target 200 ms; this guard allows a busy machine)") {
  const std::string dir = test::qwen3_tokenizer_dir();
  const double c0 = cpu_seconds();
  auto t = load_tokenizer_dir(dir);
  const double cpu = cpu_seconds() - c0;
  MESSAGE("load: " << cpu * 1e3 << " ms of CPU");
  CHECK(cpu < 1.0);
  CHECK(t->info().chat_template.find("<|im_start|>") != std::string::npos);
  CHECK(t->info().eos_token == "<|im_end|>");
}

TEST_CASE("gguf-vocab: a blob built as llama.cpp would encodes exactly like tokenizer.json") {
  const std::string dir = test::qwen3_tokenizer_dir();
  const GgufVocab v = gguf_from_tokenizer_json(dir, 151936);
  const std::string blob = gguf_vocab_to_json(v);
  const GgufVocab back = gguf_vocab_from_json(blob, "blob");
  CHECK(back.tokens == v.tokens);
  CHECK(back.token_type == v.token_type);
  CHECK(back.merges == v.merges);
  CHECK(back.eos_token_id == 151645);
  CHECK(back.add_bos_token == false);
  CHECK(back.chat_template == v.chat_template);
  auto g = load_tokenizer(kTokenizerGgufVocab, blob, "model.gguf");
  CHECK(g->vocab_size() == 151936);  // padded to the embedding rows
  CHECK(g->token_id("<|im_end|>") == 151645);
  CHECK(g->is_special(151644));
  CHECK(g->info().eos_token == "<|im_end|>");
  CHECK(g->info().chat_template == v.chat_template);
  CHECK(g->bos_id() == -1);
  for (const test::CorpusEntry& e : test::tokenizer_corpus()) {
    CAPTURE(e.name);
    CHECK(g->encode(e.text) == qwen3().encode(e.text));
  }
  CHECK(g->token_bytes(151700).empty());  // a [PAD] filler has no text
}

TEST_CASE("gguf-vocab: unsupported models and malformed blobs are named") {
  GgufVocab v;
  v.model = "rwkv";
  v.tokens = {"<unk>", "a"};
  CHECK_THROWS_WITH_AS(load_tokenizer(kTokenizerGgufVocab, gguf_vocab_to_json(v), "m.gguf"),
                       doctest::Contains("tokenizer.ggml.model 'rwkv'"), Error);
  v.model = "gpt2";
  v.pre = "deepseek-coder";
  CHECK_THROWS_WITH_AS(load_tokenizer(kTokenizerGgufVocab, gguf_vocab_to_json(v), "m.gguf"),
                       doctest::Contains("deepseek-coder"), Error);
  CHECK_THROWS_WITH_AS(gguf_vocab_from_json("{\"tokenizer.ggml.tokens\": [\"a\"]}", "x.gguf"),
                       doctest::Contains("tokenizer.ggml.model"), Error);
  CHECK_THROWS_WITH_AS(gguf_vocab_from_json("{\"tokenizer.ggml.model\": 3}", "x.gguf"),
                       doctest::Contains("must be a string"), Error);
  CHECK_THROWS_WITH_AS(gguf_vocab_from_json("{\"tokenizer.ggml.model\": \"gpt2\", ", "x.gguf"),
                       doctest::Contains("x.gguf: malformed JSON"), Error);
}

TEST_CASE("tokenizer.json: bad files give errors naming the file and the field") {
  auto err = [](std::string_view json) -> std::string {
    try {
      load_tokenizer(kTokenizerHfJson, json, "dir/tokenizer.json");
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  CHECK(err("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}")
            .find("dir/tokenizer.json: malformed JSON") == 0);
  CHECK(err("{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}")
            .find("'model.type' is 'Unigram'") != std::string::npos);
  CHECK(err("{\"version\": \"1.0\"}").find("missing field 'model'") != std::string::npos);
  CHECK(err("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
            "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"use_regex\": true}}")
            .find("no token for byte 0x00") != std::string::npos);
  CHECK(err("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"normalizer\": "
            "{\"type\": \"Lowercase\"}}")
            .find("normalizer 'Lowercase'") != std::string::npos);
  CHECK_THROWS_WITH_AS(load_tokenizer("tiktoken", "", "x"), doctest::Contains("'tiktoken'"), Error);
  CHECK_THROWS_WITH_AS(Pretokenizer("(unclosed", "cfg.json"), doctest::Contains("cfg.json"), Error);
}

TEST_CASE("byte-level alphabet: all 256 bytes round trip; \\s is rewritten for PCRE2") {
  std::string all;
  for (int b = 0; b < 256; ++b) all += char(b);
  std::string back;
  CHECK(byte_level_decode(byte_level_encode(all), &back));
  CHECK(back == all);
  CHECK(byte_level_encode(" \n") == "\xc4\xa0\xc4\x8a");  // "ĠĊ"
  CHECK(oniguruma_to_pcre2(R"(\s+(?!\S)|[^\s\p{L}])").find("\\x{3000}") != std::string::npos);
  // U+180E is not White_Space in Unicode (nor Oniguruma), though PCRE2's \s counts it.
  Pretokenizer p(R"(\s+|\S+)", "test");
  std::vector<std::string> pieces;
  const std::string text =
      "a\xe1\xa0\x8e"
      "b c";
  p.split(text, [&](size_t b, size_t n) { pieces.push_back(text.substr(b, n)); });
  CHECK(pieces == std::vector<std::string>{"a\xe1\xa0\x8e"
                                           "b",
                                           " ", "c"});
}
