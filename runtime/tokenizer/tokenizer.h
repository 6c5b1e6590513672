// Text <-> token ids. Implementations: byte-level BPE (Qwen2/Qwen3, from tokenizer.json or GGUF
// metadata) and SentencePiece (Mixtral, the demo model). A model file carries its tokenizer as
// a blob of a named kind, so one file is enough to chat.
//
// Thread-safety: a Tokenizer is immutable after loading; all methods may be called concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cs {

// What a tokenizer file says beyond its vocabulary: the chat template and the special tokens a
// chat needs (tokenizer_config.json, GGUF tokenizer.* keys, SentencePiece ids).
struct TokenizerInfo {
  std::string origin;         // the file it came from, for messages
  std::string chat_template;  // Jinja source, empty when the file has none
  std::string bos_token;      // text of BOS, empty when none
  std::string eos_token;      // text of the end-of-turn token (e.g. "<|im_end|>"), may be empty
  bool add_bos = false;       // whether prompts start with BOS (tokenizer_config add_bos_token)
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // "bpe" or "sentencepiece".
  virtual std::string kind() const = 0;
  virtual int32_t vocab_size() const = 0;
  // Encodes text. With parse_special, special and added tokens written in the text (such as
  // "<|im_start|>") become their ids; without it they are encoded as ordinary text.
  // Adds no BOS (callers add one where the model wants it: see bos_id()).
  virtual std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const = 0;
  // The raw bytes of one token; may be part of a UTF-8 sequence. Empty for an invalid id.
  virtual std::string token_bytes(int32_t id) const = 0;
  // The id of a token written exactly as `piece` (special tokens like "<|im_end|>"), if any.
  virtual std::optional<int32_t> token_id(std::string_view piece) const = 0;
  // BOS to prepend to a prompt, or -1 when the model uses none (Qwen3 uses none). Follows
  // info().add_bos and info().bos_token.
  int32_t bos_id() const { return bos_id_; }
  // True for control tokens (such as "<|im_end|>" or "</s>"): not text a model writes.
  virtual bool is_special(int32_t id) const = 0;

  const TokenizerInfo& info() const { return info_; }
  // Used by loaders only, before the tokenizer is shared. Resolves bos_id() through token_id().
  void set_info(TokenizerInfo info) {
    info_ = std::move(info);
    bos_id_ = -1;
    if (info_.add_bos && !info_.bos_token.empty())
      if (auto id = token_id(info_.bos_token)) bos_id_ = *id;
  }

  // Concatenated token bytes.
  std::string decode(std::span<const int32_t> ids) const {
    std::string out;
    for (int32_t id : ids) out += token_bytes(id);
    return out;
  }

 private:
  TokenizerInfo info_;
  int32_t bos_id_ = -1;
};

// Blob kinds stored in model files.
inline constexpr std::string_view kTokenizerHfJson = "hf-tokenizer-json";  // tokenizer.json text
inline constexpr std::string_view kTokenizerSentencePiece =
    "sentencepiece";  // tokenizer.model bytes
inline constexpr std::string_view kTokenizerGgufVocab =
    "gguf-vocab";  // JSON of GGUF tokenizer.* keys

// Builds a tokenizer from a blob; `origin` names the file in error messages. Throws cs::Error
// (kUnsupported for an unknown kind, kBadFile for a malformed blob).
std::unique_ptr<Tokenizer> load_tokenizer(std::string_view kind, std::string_view bytes,
                                          std::string_view origin);

// Loads a tokenizer file by its form: tokenizer.json (Hugging Face), a gguf-vocab JSON blob, or a
// SentencePiece .model. A tokenizer_config.json beside it, when present, supplies the chat
// template and the BOS/EOS tokens.
std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path);

// The tokenizer of a Hugging Face model directory: tokenizer.json, else tokenizer.model, plus
// tokenizer_config.json when present. Returns null when the directory has neither file.
std::unique_ptr<Tokenizer> load_tokenizer_dir(const std::string& dir);

}  // namespace cs
