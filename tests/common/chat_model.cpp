#include "tests/common/chat_model.h"

#include <sentencepiece_trainer.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <unordered_map>

#include "tests/common/fixtures.h"

namespace cs::test {

namespace {

class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& v) : v_(v) {}
  bool done() const override { return i_ >= v_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return v_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& v_;
  size_t i_ = 0;
};

}  // namespace

std::vector<std::string> training_sentences() {
  static const char* subjects[] = {"The model", "A small expert", "The router", "Every token",
                                   "The cache", "My assistant",   "The GPU",    "This prompt"};
  static const char* verbs[] = {"reads",    "streams", "computes", "answers",
                                "predicts", "loads",   "writes",   "routes"};
  static const char* objects[] = {"the weights", "a question",    "two experts", "the next word",
                                  "cold memory", "a short reply", "the context", "hello world"};
  static const char* tails[] = {".", "!", "?", " quickly.", " again.", " today, 42 times."};
  std::vector<std::string> out;
  uint64_t r = 7;
  for (int i = 0; i < 3000; ++i) {
    auto pick = [&](size_t n) {
      r = r * 6364136223846793005ULL + 1442695040888963407ULL;
      return size_t(r >> 33) % n;
    };
    out.push_back(std::string(subjects[pick(8)]) + " " + verbs[pick(8)] + " " + objects[pick(8)] +
                  tails[pick(6)]);
  }
  return out;
}

std::string train_sentencepiece(int vocab_size,
                                const std::map<std::string, std::string>& overrides) {
  const std::vector<std::string> sentences = training_sentences();
  VectorIterator it(sentences);
  std::string model;
  std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(vocab_size)},
      {"byte_fallback", "true"},
      {"character_coverage", "1.0"},
      {"user_defined_symbols", "<|im_start|>,<|im_end|>,<think>,</think>"},
      {"unk_id", "0"},
      {"bos_id", "-1"},
      {"eos_id", "1"},
      {"eos_piece", "<|endoftext|>"},
      {"pad_id", "-1"},
      {"num_threads", "1"},
      {"minloglevel", "2"}};
  for (const auto& [k, v] : overrides) {
    if (v.empty())
      args.erase(k);
    else
      args[k] = v;
  }
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &model);
  if (!status.ok()) throw std::runtime_error("SentencePiece training failed: " + status.ToString());
  return model;
}

std::string make_chat_model(const std::string& dir) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  fs::copy(fixture("qwen3moe"), dir,
           fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  const std::string sp = train_sentencepiece();
  std::ofstream(dir + "/tokenizer.model", std::ios::binary) << sp;
  nlohmann::json cfg;
  {
    std::ifstream in(dir + "/config.json");
    cfg = nlohmann::json::parse(in);
  }
  // <|im_end|> is the first user-defined piece after <unk> (0), <|endoftext|> (1), <|im_start|>.
  cfg["eos_token_id"] = 3;
  cfg["coldstream_description"] =
      "Test model: the tiny Qwen3-MoE fixture with random weights (its replies are noise) and a "
      "SentencePiece vocabulary trained by the test.";
  std::ofstream(dir + "/config.json") << cfg.dump(2);
  nlohmann::json tc = {{"eos_token", "<|im_end|>"}, {"add_bos_token", false}};
  std::ofstream(dir + "/tokenizer_config.json") << tc.dump(2);
  return dir;
}

}  // namespace cs::test
