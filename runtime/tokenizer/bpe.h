// Byte-level BPE (GPT-2 family: Qwen2/Qwen3, Llama 3): added tokens first, then NFC, then the
// split regex, then merges by rank over the bytes of each piece, exactly as Hugging Face
// tokenizers' BPE model (lowest rank first, leftmost on ties).
//
// Vocabularies arrive in the byte-level alphabet of GPT-2 (each byte shown as a printable
// character: ' ' is 'Ġ', '\n' is 'Ċ'); tokens are kept as raw bytes once loaded.
//
// Thread-safety: immutable after construction; encode() may run on many threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/tokenizer/added_tokens.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cs {

// Everything a byte-level BPE tokenizer is made of, whatever file it came from.
struct BpeSpec {
  // id -> token in the byte-level alphabet; an empty string marks an unused id.
  std::vector<std::string> tokens;
  // Merges in rank order, "left right" in the byte-level alphabet.
  std::vector<std::string> merges;
  // Special and user-defined tokens: text as written, not byte-level. Their ids may lie inside
  // `tokens` (GGUF) or beyond it (tokenizer.json).
  std::vector<AddedToken> added;
  std::string pattern;         // split regex (Oniguruma syntax); empty: no split
  bool nfc = false;            // NFC-normalise ordinary text before splitting
  bool ignore_merges = false;  // a piece that is itself a token is taken whole (Llama 3)
  TokenizerInfo info;
};

// Byte <-> character of the GPT-2 byte-level alphabet.
std::string byte_level_encode(std::string_view bytes);
// Returns false when `text` holds a character outside the alphabet (it is then copied as is).
bool byte_level_decode(std::string_view text, std::string* bytes);

class BpeTokenizer final : public Tokenizer {
 public:
  // Throws cs::Error naming `origin` for an unknown merge part, a missing byte token, or a
  // pattern that does not compile.
  BpeTokenizer(BpeSpec spec, std::string_view origin);
  ~BpeTokenizer() override;

  std::string kind() const override { return "bpe"; }
  int32_t vocab_size() const override { return int32_t(bytes_.size()); }
  std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const override;
  std::string token_bytes(int32_t id) const override;
  std::optional<int32_t> token_id(std::string_view piece) const override;
  bool is_special(int32_t id) const override;

  // Merges one pre-tokenized piece (raw bytes) and appends its ids. Exposed for tests.
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<std::string> bytes_;  // id -> raw bytes
};

}  // namespace cs
