// The token stream that evaluation commands (perplexity, routing-stats) read: a text file through
// the model's tokenizer, or a file of token ids.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/model/model.h"

namespace cs::cli {

// Exactly one of text_file (--file) and ids_file (--ids-file) is non-empty. Text goes through
// Model::tokenizer() with special tokens parsed (so "<|endoftext|>" in the text is one token),
// with the tokenizer's BOS, if it has one, prepended once. An ids file holds integers separated
// by whitespace or commas. At most max_tokens are kept (0 = all). Throws cs::Error naming the
// flag or file.
std::vector<int32_t> load_eval_tokens(const Model& model, const std::string& text_file,
                                      const std::string& ids_file, int64_t max_tokens);

// Parses an ids file's contents; `origin` names it in errors.
std::vector<int32_t> parse_id_list(const std::string& text, const std::string& origin);

}  // namespace cs::cli
