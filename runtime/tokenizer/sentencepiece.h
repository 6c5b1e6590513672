// SentencePiece tokenizers (Mixtral's tokenizer.model, the demo model) through libsentencepiece.
// Control pieces written in the text (such as "<s>" or "<|im_start|>" when it is a control
// piece) become their ids when parsing special tokens; user-defined pieces are always matched by
// SentencePiece itself. Each run of text between control tokens is encoded on its own, as
// Hugging Face's Llama tokenizers do (so each run gets SentencePiece's dummy-prefix space).
//
// Thread-safety: SentencePieceProcessor's const methods are thread-safe; so is this class.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/tokenizer/added_tokens.h"
#include "runtime/tokenizer/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace cs {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // `model` is a serialized ModelProto (the bytes of tokenizer.model). Throws cs::Error naming
  // `origin` when libsentencepiece rejects it.
  SentencePieceTokenizer(std::string_view model, std::string_view origin);
  ~SentencePieceTokenizer() override;

  std::string kind() const override { return "sentencepiece"; }
  int32_t vocab_size() const override;
  std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const override;
  std::string token_bytes(int32_t id) const override;
  std::optional<int32_t> token_id(std::string_view piece) const override;
  bool is_special(int32_t id) const override;

  // True when SentencePiece prefixes text with a space (add_dummy_prefix): a decoder drops the
  // space that starts the first piece of a reply.
  bool adds_dummy_prefix() const { return dummy_prefix_; }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::vector<std::string> bytes_;  // id -> text ("▁" as a space, <0xAB> as the byte)
  AddedTokenMatcher control_;
  bool dummy_prefix_ = true;
};

}  // namespace cs
