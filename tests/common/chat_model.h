// A model that chats end to end on any machine: a copy of the tiny qwen3moe fixture (vocab 512,
// random weights) with a SentencePiece tokenizer trained here (sentencepiece's own trainer) whose
// vocabulary fits the model's, and a tokenizer_config.json. Its replies are noise; the plumbing
// (template, tokenizer, stop tokens, streaming, REPL) is real.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace cs::test {

// Trains a SentencePiece model (BPE, byte fallback) over a generated English corpus with
// <|im_start|>, <|im_end|>, <think>, </think> as user-defined pieces and <|endoftext|> as EOS.
// Returns the serialized model (the bytes of a tokenizer.model).
// `overrides` replace or add trainer flags (e.g. {"normalization_rule_name", "identity"}); an empty
// value removes a flag.
std::string train_sentencepiece(int vocab_size = 400,
                                const std::map<std::string, std::string>& overrides = {});

// Writes the chat model into `dir` (created): config.json, model.safetensors, tokenizer.model,
// tokenizer_config.json. Returns `dir`.
std::string make_chat_model(const std::string& dir);

// The generated training sentences (also useful as test text).
std::vector<std::string> training_sentences();

}  // namespace cs::test
