// A minimal, fast JSON scanner for the big arrays of tokenizer files. nlohmann::json builds a DOM
// of the 11 MB Qwen3 tokenizer.json in about a second; scanning its vocabulary and merges in place
// takes a few tens of milliseconds. Small sections are handed to nlohmann as text spans.
//
// Positions are byte offsets into the document. Functions throw cs::Error (kBadFile) naming
// `origin` and the offset on malformed input.
//
// Thread-safety: a Scanner is used by one thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace cs {

class JsonScanner {
 public:
  JsonScanner(std::string_view doc, std::string_view origin) : s_(doc), origin_(origin) {}

  // Skips whitespace from i; returns the first other position.
  size_t ws(size_t i) const;
  // Skips one value starting at i (after whitespace); returns the position after it.
  size_t skip(size_t i) const;
  // Reads a string starting at i (at its opening quote, after whitespace) into *out, unescaped;
  // returns the position after the closing quote.
  size_t string(size_t i, std::string* out) const;
  // Reads an integer at i; returns the position after it.
  size_t integer(size_t i, long long* out) const;
  // Expects character c at i (after whitespace); returns the position after it.
  size_t expect(size_t i, char c) const;
  // Calls f(key, value_pos) for each member of the object at i; f returns the position after the
  // value. Returns the position after the object.
  template <typename F>
  size_t object(size_t i, F&& f) const {
    i = expect(i, '{');
    std::string key;
    i = ws(i);
    if (i < s_.size() && s_[i] == '}') return i + 1;
    for (;;) {
      i = string(ws(i), &key);
      i = expect(i, ':');
      i = f(key, ws(i));
      i = ws(i);
      if (i < s_.size() && s_[i] == ',') {
        ++i;
        continue;
      }
      return expect(i, '}');
    }
  }
  // Calls f(value_pos) for each element of the array at i; f returns the position after it.
  template <typename F>
  size_t array(size_t i, F&& f) const {
    i = expect(i, '[');
    i = ws(i);
    if (i < s_.size() && s_[i] == ']') return i + 1;
    for (;;) {
      i = ws(f(ws(i)));
      if (i < s_.size() && s_[i] == ',') {
        ++i;
        continue;
      }
      return expect(i, ']');
    }
  }
  bool at(size_t i, char c) const { return i < s_.size() && s_[i] == c; }
  std::string_view span(size_t b, size_t e) const { return s_.substr(b, e - b); }
  [[noreturn]] void error(size_t i, std::string_view what) const;

 private:
  std::string_view s_;
  std::string_view origin_;
};

}  // namespace cs
