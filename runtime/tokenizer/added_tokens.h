// Added tokens (special and user-defined) are found in the text before any other step, as
// Hugging Face tokenizers does: leftmost match first, the longest token at that position,
// optionally absorbing whitespace on the left (lstrip) or right (rstrip).
//
// Thread-safety: immutable after construction.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cs {

struct AddedToken {
  int32_t id = -1;
  std::string content;       // the text as written in a prompt, e.g. "<|im_end|>"
  bool special = false;      // control token: matched only when parsing special tokens
  bool lstrip = false;       // absorbs whitespace before it
  bool rstrip = false;       // absorbs whitespace after it
  bool single_word = false;  // matches only between word boundaries
  bool normalized = false;   // matched in normalised text rather than raw text
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  // Splits `text` into runs of ordinary text and added tokens. Calls on_text(begin, length) for
  // each ordinary run and on_token(id) for each token, in order. With `parse_special` false,
  // tokens marked special are left in the text. `normalized` selects which tokens take part.
  template <typename OnText, typename OnToken>
  void split(std::string_view text, bool parse_special, bool normalized, OnText&& on_text,
             OnToken&& on_token) const {
    size_t pos = 0, emitted = 0;
    while (pos < text.size()) {
      Match m;
      if (!find(text, pos, parse_special, normalized, &m)) break;
      if (m.begin > emitted) on_text(emitted, m.begin - emitted);
      on_token(m.id);
      pos = emitted = m.end;
    }
    if (emitted < text.size()) on_text(emitted, text.size() - emitted);
  }

  bool empty() const { return tokens_.empty(); }
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  struct Match {
    size_t begin, end;
    int32_t id;
  };
  bool find(std::string_view text, size_t pos, bool parse_special, bool normalized, Match* m) const;
  std::vector<AddedToken> tokens_;
  // Token indices by first byte, longest first.
  std::array<std::vector<uint32_t>, 256> by_first_{};
  int single_first_ = -1;  // the first byte shared by all tokens (scanned with memchr), or -1
};

}  // namespace cs
