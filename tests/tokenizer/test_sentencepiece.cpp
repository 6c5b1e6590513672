// SentencePiece through libsentencepiece, with a model trained here by sentencepiece's trainer.
#include <doctest/doctest.h>
#include <sentencepiece_processor.h>

#include <algorithm>

#include "common/error.h"
#include "runtime/tokenizer/gguf_vocab.h"
#include "runtime/tokenizer/sentencepiece.h"
#include "runtime/tokenizer/stream_decoder.h"
#include "runtime/tokenizer/utf8.h"
#include "tests/common/chat_model.h"
#include "tests/common/fixtures.h"

using namespace cs;

namespace {

const std::string& trained() {
  static const std::string m = test::train_sentencepiece(400);
  return m;
}

std::string stream_decode(const Tokenizer& t, const std::vector<int32_t>& ids, bool strip) {
  StreamDecoder d(t, true, strip);
  std::string out;
  for (int32_t id : ids) {
    const std::string p = d.push(id);
    REQUIRE(utf8::is_valid(p));
    out += p;
  }
  return out + d.flush();
}

}  // namespace

TEST_CASE("sentencepiece: ids equal libsentencepiece's own; pieces and specials are exposed") {
  auto t = load_tokenizer(kTokenizerSentencePiece, trained(), "tokenizer.model");
  sentencepiece::SentencePieceProcessor sp;
  REQUIRE(sp.LoadFromSerializedProto(trained()).ok());
  CHECK(t->kind() == "sentencepiece");
  CHECK(t->vocab_size() == 400);
  for (const std::string& s :
       {std::string("The model reads the weights."),
        std::string("Every token routes two experts quickly."), std::string("unseen wörds 42")}) {
    CAPTURE(s);
    std::vector<int> want;
    sp.Encode(s, &want);
    CHECK(t->encode(s) == std::vector<int32_t>(want.begin(), want.end()));
  }
  CHECK(t->token_id("<|im_end|>") == 3);
  CHECK(t->token_id("<|endoftext|>") == 1);
  CHECK(t->token_id("no such piece") == std::nullopt);
  CHECK(t->is_special(1));  // EOS is a control piece
  CHECK_FALSE(t->is_special(3));
  CHECK(t->bos_id() == -1);  // trained without BOS
  CHECK(t->info().eos_token == "<|endoftext|>");
}

TEST_CASE("sentencepiece: control pieces in the text are parsed only when asked") {
  auto t = load_tokenizer(kTokenizerSentencePiece, trained(), "tokenizer.model");
  const std::vector<int32_t> parsed = t->encode("hello<|endoftext|>world", true);
  CHECK(std::count(parsed.begin(), parsed.end(), 1) == 1);
  const std::vector<int32_t> plain = t->encode("hello<|endoftext|>world", false);
  CHECK(std::count(plain.begin(), plain.end(), 1) == 0);
  // User-defined pieces are always matched by SentencePiece itself.
  const std::vector<int32_t> ud = t->encode("<|im_start|>user", true);
  CHECK(std::count(ud.begin(), ud.end(), 2) == 1);
}

TEST_CASE("sentencepiece: byte fallback round trips any text through the streaming decoder") {
  auto t = load_tokenizer(kTokenizerSentencePiece, trained(), "tokenizer.model");
  const auto* sp = dynamic_cast<const SentencePieceTokenizer*>(t.get());
  REQUIRE(sp);
  CHECK(sp->adds_dummy_prefix());
  for (const std::string& s :
       {std::string("The cache loads cold memory."),
        std::string("Привет, 世界! 👍🏽 naïve"), std::string("tabs\tand\nnewlines")}) {
    CAPTURE(s);
    const std::vector<int32_t> ids = t->encode(s);
    // SentencePiece normalises (NFKC, whitespace); compare with its own decoding.
    sentencepiece::SentencePieceProcessor proc;
    REQUIRE(proc.LoadFromSerializedProto(trained()).ok());
    std::string want;
    proc.Decode(std::vector<int>(ids.begin(), ids.end()), &want);
    CHECK(stream_decode(*t, ids, true) == want);
  }
}

TEST_CASE("sentencepiece: a blob that is not a model is refused with its origin") {
  CHECK_THROWS_WITH_AS(load_tokenizer(kTokenizerSentencePiece, "not a model", "m/tokenizer.model"),
                       doctest::Contains("m/tokenizer.model: not a SentencePiece model"), Error);
}

TEST_CASE("gguf-vocab 'llama': a SentencePiece vocabulary from GGUF keys encodes like the model") {
  // Llama/Mistral models normalise nothing but add the dummy-prefix space; train one like that.
  const std::string model = test::train_sentencepiece(400, {{"normalization_rule_name", "identity"},
                                                            {"remove_extra_whitespaces", "false"},
                                                            {"user_defined_symbols", ""},
                                                            {"bos_id", "1"},
                                                            {"eos_id", "2"},
                                                            {"eos_piece", ""}});
  sentencepiece::SentencePieceProcessor sp;
  REQUIRE(sp.LoadFromSerializedProto(model).ok());
  // What a GGUF converter stores: pieces, scores, types, special ids.
  GgufVocab v;
  v.model = "llama";
  for (int i = 0; i < sp.GetPieceSize(); ++i) {
    v.tokens.push_back(sp.IdToPiece(i));
    v.scores.push_back(sp.GetScore(i));
    v.token_type.push_back(sp.IsUnknown(i) ? 2 : sp.IsControl(i) ? 3 : sp.IsByte(i) ? 6 : 1);
  }
  v.unknown_token_id = sp.unk_id();
  v.bos_token_id = sp.bos_id();
  v.eos_token_id = sp.eos_id();
  v.add_bos_token = true;
  v.chat_template = "[INST]";
  auto t = load_tokenizer(kTokenizerGgufVocab, gguf_vocab_to_json(v), "mixtral.gguf");
  CHECK(t->kind() == "sentencepiece");
  CHECK(t->vocab_size() == 400);
  CHECK(t->bos_id() == 1);
  CHECK(t->info().eos_token == "</s>");
  CHECK(t->info().chat_template == "[INST]");
  std::vector<std::string> texts = test::training_sentences();
  texts.resize(200);
  texts.push_back("  two  spaces, unseen wörds and 😀 bytes");
  texts.push_back("<s>[INST] hi [/INST]");
  for (const std::string& s : texts) {
    CAPTURE(s);
    std::vector<int> want;
    sp.Encode(s, &want);
    REQUIRE(t->encode(s, false) == std::vector<int32_t>(want.begin(), want.end()));
  }
  v.scores.pop_back();
  CHECK_THROWS_WITH_AS(load_tokenizer(kTokenizerGgufVocab, gguf_vocab_to_json(v), "m.gguf"),
                       doctest::Contains("tokenizer.ggml.scores"), Error);
}

TEST_CASE(
    "the demo model's tokenizer: ChatML tags are single pieces, text comes back byte for byte") {
  const std::string path = test::fixture_dir() + "/../../tools/demo/tokenizer/tokenizer.model";
  auto t = load_tokenizer_file(path);
  CHECK(t->kind() == "sentencepiece");
  CHECK(t->bos_id() == -1);
  const auto* sp = dynamic_cast<const SentencePieceTokenizer*>(t.get());
  REQUIRE(sp);
  CHECK_FALSE(sp->adds_dummy_prefix());
  for (const char* tag : {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"}) {
    CAPTURE(tag);
    REQUIRE(t->token_id(tag).has_value());
    CHECK(t->encode(tag) == std::vector<int32_t>{*t->token_id(tag)});
  }
  const std::string chat =
      "<|im_start|>user\nWhat does ls do?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
      "  ls lists directory contents.\tTabs, 12345, naïve 😀\n<|im_end|>\n";
  const std::vector<int32_t> ids = t->encode(chat);
  CHECK(t->decode(ids) == chat);
  CHECK(stream_decode(*t, ids, sp->adds_dummy_prefix()) ==
        chat);  // the user-defined tags are text to the decoder
}
