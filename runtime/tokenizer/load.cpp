// load_tokenizer and the file/directory loaders: which reader a blob or file goes to.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "runtime/tokenizer/bpe.h"
#include "runtime/tokenizer/gguf_vocab.h"
#include "runtime/tokenizer/hf_json.h"
#include "runtime/tokenizer/sentencepiece.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cs {

namespace {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kNotFound, "{}: cannot open file", path);
  std::string s;
  in.seekg(0, std::ios::end);
  s.resize(size_t(in.tellg()));
  in.seekg(0);
  in.read(s.data(), std::streamsize(s.size()));
  if (!in) fail(ErrorKind::kIo, "{}: read failed", path);
  return s;
}

// A gguf-vocab blob is a JSON object whose first key is a tokenizer.* GGUF key.
bool looks_like_gguf_vocab(std::string_view text) {
  const size_t head = std::min<size_t>(text.size(), 256);
  return text.substr(0, head).find("\"tokenizer.ggml.") != std::string_view::npos;
}

void apply_config_beside(Tokenizer& t, const fs::path& dir) {
  const fs::path cfg = dir / "tokenizer_config.json";
  if (!fs::exists(cfg)) return;
  TokenizerInfo info = t.info();
  apply_hf_tokenizer_config(read_file(cfg.string()), cfg.string(), &info);
  t.set_info(std::move(info));
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(std::string_view kind, std::string_view bytes,
                                          std::string_view origin) {
  if (kind == kTokenizerHfJson)
    return std::make_unique<BpeTokenizer>(parse_hf_tokenizer_json(bytes, origin), origin);
  if (kind == kTokenizerSentencePiece)
    return std::make_unique<SentencePieceTokenizer>(bytes, origin);
  if (kind == kTokenizerGgufVocab) {
    const GgufVocab v = gguf_vocab_from_json(bytes, origin);
    if (v.model != "llama")
      return std::make_unique<BpeTokenizer>(bpe_spec_from_gguf(v, origin), origin);
    auto t =
        std::make_unique<SentencePieceTokenizer>(sentencepiece_model_from_gguf(v, origin), origin);
    TokenizerInfo info = t->info();
    info.chat_template = v.chat_template;
    info.add_bos = v.add_bos_token.value_or(info.add_bos);
    t->set_info(std::move(info));
    return t;
  }
  fail(ErrorKind::kUnsupported, "{}: tokenizer kind '{}' is not supported (expected {}, {} or {})",
       origin, kind, kTokenizerHfJson, kTokenizerSentencePiece, kTokenizerGgufVocab);
}

std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path) {
  if (fs::is_directory(path)) {
    auto t = load_tokenizer_dir(path);
    if (!t)
      fail(ErrorKind::kNotFound, "{}: no tokenizer.json or tokenizer.model in this directory",
           path);
    return t;
  }
  const std::string bytes = read_file(path);
  std::unique_ptr<Tokenizer> t;
  if (path.ends_with(".json")) {
    t = load_tokenizer(looks_like_gguf_vocab(bytes) ? kTokenizerGgufVocab : kTokenizerHfJson, bytes,
                       path);
  } else if (path.ends_with(".model")) {
    t = load_tokenizer(kTokenizerSentencePiece, bytes, path);
  } else {
    fail(ErrorKind::kUnsupported,
         "{}: unknown tokenizer file (expected tokenizer.json, a gguf-vocab .json or a "
         "SentencePiece .model)",
         path);
  }
  apply_config_beside(*t, fs::path(path).parent_path());
  return t;
}

std::unique_ptr<Tokenizer> load_tokenizer_dir(const std::string& dir) {
  const fs::path d(dir);
  std::unique_ptr<Tokenizer> t;
  if (fs::exists(d / "tokenizer.json")) {
    const std::string p = (d / "tokenizer.json").string();
    t = load_tokenizer(kTokenizerHfJson, read_file(p), p);
  } else if (fs::exists(d / "tokenizer.model")) {
    const std::string p = (d / "tokenizer.model").string();
    t = load_tokenizer(kTokenizerSentencePiece, read_file(p), p);
  } else {
    return nullptr;
  }
  apply_config_beside(*t, d);
  return t;
}

}  // namespace cs
