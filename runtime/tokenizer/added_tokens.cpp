#include "runtime/tokenizer/added_tokens.h"

#include <algorithm>
#include <cstring>

#include "runtime/tokenizer/utf8.h"

namespace cs {

namespace {

bool is_space_cp(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Start of the code point that ends at byte `i` (exclusive).
size_t prev_cp_start(std::string_view s, size_t i) {
  size_t j = i - 1;
  while (j > 0 && (uint8_t(s[j]) & 0xC0) == 0x80) --j;
  return j;
}

bool is_word_cp(char32_t c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         c >= 0x80;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  for (uint32_t i = 0; i < tokens_.size(); ++i)
    if (!tokens_[i].content.empty()) by_first_[uint8_t(tokens_[i].content[0])].push_back(i);
  int distinct = 0;
  for (int b = 0; b < 256; ++b)
    if (!by_first_[b].empty()) {
      ++distinct;
      single_first_ = b;
    }
  if (distinct != 1) single_first_ = -1;
  for (auto& v : by_first_)
    std::stable_sort(v.begin(), v.end(), [&](uint32_t a, uint32_t b) {
      return tokens_[a].content.size() > tokens_[b].content.size();
    });
}

bool AddedTokenMatcher::find(std::string_view text, size_t pos, bool parse_special, bool normalized,
                             Match* m) const {
  for (size_t i = pos; i < text.size(); ++i) {
    if (single_first_ >= 0) {  // Qwen's added tokens all start with '<'
      const void* q = std::memchr(text.data() + i, single_first_, text.size() - i);
      if (!q) return false;
      i = size_t(static_cast<const char*>(q) - text.data());
    }
    const auto& cands = by_first_[uint8_t(text[i])];
    if (cands.empty()) continue;
    for (uint32_t k : cands) {
      const AddedToken& t = tokens_[k];
      if (t.normalized != normalized || (t.special && !parse_special)) continue;
      if (text.compare(i, t.content.size(), t.content) != 0) continue;
      size_t b = i, e = i + t.content.size();
      if (t.single_word) {
        size_t j = b;
        if (b > 0) {
          j = prev_cp_start(text, b);
          if (is_word_cp(utf8::next_code_point(text, j))) continue;
        }
        j = e;
        if (e < text.size() && is_word_cp(utf8::next_code_point(text, j))) continue;
      }
      if (t.lstrip)
        while (b > pos) {
          size_t j = prev_cp_start(text, b), k2 = j;
          if (!is_space_cp(utf8::next_code_point(text, k2))) break;
          b = j;
        }
      if (t.rstrip)
        while (e < text.size()) {
          size_t j = e;
          if (!is_space_cp(utf8::next_code_point(text, j))) break;
          e = j;
        }
      *m = {b, e, t.id};
      return true;
    }
  }
  return false;
}

}  // namespace cs
