// Reading Hugging Face tokenizer files: tokenizer.json (byte-level BPE models) and the parts of
// tokenizer_config.json a chat needs (chat template, BOS/EOS, add_bos_token).
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "runtime/tokenizer/bpe.h"

namespace cs {

// Parses tokenizer.json text. Throws cs::Error naming `origin` and the field: kBadFile when
// malformed, kUnsupported for a model, normalizer or pre-tokenizer this runtime does not have.
BpeSpec parse_hf_tokenizer_json(std::string_view text, std::string_view origin);

// Fills the chat fields of `info` from tokenizer_config.json text (fields it lacks stay as they
// are). Throws cs::Error naming `origin` for malformed JSON or a field of the wrong type.
void apply_hf_tokenizer_config(std::string_view text, std::string_view origin, TokenizerInfo* info);

}  // namespace cs
