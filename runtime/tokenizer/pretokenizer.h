// The split step of byte-level BPE: a regular expression that cuts normalised text into pieces,
// each of which is then merged on its own. Patterns are written in the Oniguruma syntax of
// Hugging Face tokenizers (tokenizer.json) and run with PCRE2 (JIT-compiled, UTF mode, Unicode
// properties). `\s`/`\S` are rewritten to Oniguruma's Unicode White_Space set, which differs from
// PCRE2's (PCRE2 counts U+180E as space).
//
// Thread-safety: a compiled Pretokenizer is immutable; split() may be called concurrently (match
// data is per thread).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cs {

// The Qwen2/Qwen3 split pattern (tokenizer.json pre_tokenizer, GGUF tokenizer.ggml.pre "qwen2").
inline constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Llama 3 (GGUF pre "llama-bpe"/"llama3"): numbers in groups of up to three.
inline constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// GPT-2 (GGUF pre "gpt2" or "default").
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class Pretokenizer {
 public:
  // Compiles `pattern`; throws cs::Error naming `origin` when PCRE2 rejects it.
  Pretokenizer(std::string_view pattern, std::string_view origin);
  ~Pretokenizer();
  Pretokenizer(const Pretokenizer&) = delete;
  Pretokenizer& operator=(const Pretokenizer&) = delete;

  // Calls on_piece(begin, length) for each piece of valid UTF-8 `text`, in order, covering all of
  // it: matches and the gaps between them ("Isolated" behaviour).
  // REQUIRES: text is valid UTF-8.
  template <typename F>
  void split(std::string_view text, F&& on_piece) const {
    size_t pos = 0;
    while (pos < text.size()) {
      size_t b = 0, e = 0;
      if (!next_match(text, pos, &b, &e)) break;
      if (b > pos) on_piece(pos, b - pos);
      on_piece(b, e - b);
      pos = e;
    }
    if (pos < text.size()) on_piece(pos, text.size() - pos);
  }

  const std::string& pattern() const { return pattern_; }

 private:
  // Finds the next non-empty match at or after `pos`.
  bool next_match(std::string_view text, size_t pos, size_t* begin, size_t* end) const;
  std::string pattern_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Rewrites an Oniguruma-syntax pattern for PCRE2 (see the file comment). Exposed for tests.
std::string oniguruma_to_pcre2(std::string_view pattern);

}  // namespace cs
