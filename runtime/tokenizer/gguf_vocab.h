// The "gguf-vocab" tokenizer blob: the tokenizer.* metadata of a GGUF file as one JSON object,
// so a GGUF file's tokenizer travels the same way as tokenizer.json (load_tokenizer(kind, bytes)).
// The GGUF reader fills a GgufVocab from the file's keys and calls gguf_vocab_to_json; the schema
// is in docs/TOKENIZERS.md.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/tokenizer/bpe.h"

namespace cs {

// GGUF token types (tokenizer.ggml.token_type).
enum class GgufTokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// The GGUF keys, each field named after its key.
struct GgufVocab {
  std::string model;                // tokenizer.ggml.model: "gpt2" (byte-level BPE), "llama", ...
  std::string pre;                  // tokenizer.ggml.pre: "qwen2", "llama-bpe", "gpt2", ...
  std::vector<std::string> tokens;  // tokenizer.ggml.tokens (byte-level alphabet for gpt2)
  std::vector<int32_t> token_type;  // tokenizer.ggml.token_type, empty = all normal
  std::vector<float> scores;        // tokenizer.ggml.scores (SentencePiece-style vocabularies)
  std::vector<std::string> merges;  // tokenizer.ggml.merges, "left right" in rank order
  std::optional<int32_t> bos_token_id, eos_token_id, unknown_token_id, padding_token_id;
  std::optional<bool> add_bos_token;  // tokenizer.ggml.add_bos_token
  std::string chat_template;          // tokenizer.chat_template
};

// Writes the blob: a JSON object whose keys are the GGUF key names (absent optionals omitted).
std::string gguf_vocab_to_json(const GgufVocab& v);
// Reads a blob back. Throws cs::Error (kBadFile) naming `origin` and the key.
GgufVocab gguf_vocab_from_json(std::string_view text, std::string_view origin);

// The split pattern for a tokenizer.ggml.pre value; throws kUnsupported for an unknown one.
std::string gguf_pre_pattern(std::string_view pre, std::string_view origin);

// A byte-level BPE spec from a "gpt2" vocabulary; throws kUnsupported for other models.
BpeSpec bpe_spec_from_gguf(const GgufVocab& v, std::string_view origin);

// A SentencePiece model (serialized ModelProto) from a "llama" vocabulary (Llama 2, Mistral,
// Mixtral GGUF files): the pieces with their scores and types, BPE, byte fallback when the
// vocabulary has byte pieces, identity normalisation with the dummy-prefix space, as llama.cpp
// tokenizes these files. Throws kBadFile when scores are missing.
std::string sentencepiece_model_from_gguf(const GgufVocab& v, std::string_view origin);

}  // namespace cs
