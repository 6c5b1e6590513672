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
  // BOS to prepend to a prompt, or -1 when the model uses none (Qwen3 uses none).
  virtual int32_t bos_id() const = 0;

  // Concatenated token bytes.
  std::string decode(std::span<const int32_t> ids) const {
    std::string out;
    for (int32_t id : ids) out += token_bytes(id);
    return out;
  }
};

// Blob kinds stored in model files.
inline constexpr std::string_view kTokenizerHfJson = "hf-tokenizer-json";  // tokenizer.json text
inline constexpr std::string_view kTokenizerSentencePiece =
    "sentencepiece";  // tokenizer.model bytes
inline constexpr std::string_view kTokenizerGgufVocab =
    "gguf-vocab";  // JSON of GGUF tokenizer.* keys

// Builds a tokenizer from a blob; `origin` names the file in error messages.
std::unique_ptr<Tokenizer> load_tokenizer(std::string_view kind, std::string_view bytes,
                                          std::string_view origin);

}  // namespace cs
