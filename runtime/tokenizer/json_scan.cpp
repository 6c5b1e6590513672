#include "runtime/tokenizer/json_scan.h"

#include <cstring>

#include "common/error.h"
#include "runtime/tokenizer/utf8.h"

namespace cs {

void JsonScanner::error(size_t i, std::string_view what) const {
  fail(ErrorKind::kBadFile, "{}: malformed JSON at byte {}: {}", origin_, i, what);
}

size_t JsonScanner::ws(size_t i) const {
  while (i < s_.size() && (s_[i] == ' ' || s_[i] == '\n' || s_[i] == '\r' || s_[i] == '\t')) ++i;
  return i;
}

size_t JsonScanner::expect(size_t i, char c) const {
  i = ws(i);
  if (i >= s_.size() || s_[i] != c) error(i, fmt::format("expected '{}'", c));
  return i + 1;
}

size_t JsonScanner::skip(size_t i) const {
  i = ws(i);
  if (i >= s_.size()) error(i, "expected a value");
  const char c = s_[i];
  if (c == '"') {
    ++i;
    for (;;) {
      const void* q = std::memchr(s_.data() + i, '"', s_.size() - i);
      if (!q) error(i, "unterminated string");
      size_t j = size_t(static_cast<const char*>(q) - s_.data());
      // The quote is escaped when an odd number of backslashes precede it.
      size_t k = j;
      while (k > i && s_[k - 1] == '\\') --k;
      if ((j - k) % 2 == 0) return j + 1;
      i = j + 1;
    }
  }
  if (c == '{' || c == '[') {
    int depth = 0;
    while (i < s_.size()) {
      const char d = s_[i];
      if (d == '"') {
        i = skip(i);
        continue;
      }
      if (d == '{' || d == '[') ++depth;
      if (d == '}' || d == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    error(i, "unterminated object or array");
  }
  // A number, true, false or null.
  size_t j = i;
  while (j < s_.size() && !std::strchr(",}] \n\r\t", s_[j])) ++j;
  if (j == i) error(i, "expected a value");
  return j;
}

size_t JsonScanner::string(size_t i, std::string* out) const {
  i = ws(i);
  if (i >= s_.size() || s_[i] != '"') error(i, "expected a string");
  ++i;
  out->clear();
  for (;;) {
    size_t j = i;
    while (j < s_.size() && s_[j] != '"' && s_[j] != '\\') ++j;
    out->append(s_.data() + i, j - i);
    if (j >= s_.size()) error(j, "unterminated string");
    if (s_[j] == '"') return j + 1;
    // An escape.
    if (j + 1 >= s_.size()) error(j, "unterminated escape");
    const char e = s_[j + 1];
    i = j + 2;
    switch (e) {
      case '"':
        *out += '"';
        break;
      case '\\':
        *out += '\\';
        break;
      case '/':
        *out += '/';
        break;
      case 'b':
        *out += '\b';
        break;
      case 'f':
        *out += '\f';
        break;
      case 'n':
        *out += '\n';
        break;
      case 'r':
        *out += '\r';
        break;
      case 't':
        *out += '\t';
        break;
      case 'u': {
        auto hex4 = [&](size_t p) {
          if (p + 4 > s_.size()) error(p, "short \\u escape");
          unsigned v = 0;
          for (size_t k = p; k < p + 4; ++k) {
            const char h = s_[k];
            v <<= 4;
            if (h >= '0' && h <= '9')
              v |= unsigned(h - '0');
            else if (h >= 'a' && h <= 'f')
              v |= unsigned(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F')
              v |= unsigned(h - 'A' + 10);
            else
              error(k, "bad hex digit in \\u escape");
          }
          return v;
        };
        char32_t cp = hex4(i);
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 <= s_.size() && s_[i] == '\\' &&
            s_[i + 1] == 'u') {
          const unsigned lo = hex4(i + 2);
          if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
          }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // a lone surrogate
        utf8::append_code_point(*out, cp);
        break;
      }
      default:
        error(j, "unknown escape");
    }
  }
}

size_t JsonScanner::integer(size_t i, long long* out) const {
  i = ws(i);
  bool neg = false;
  if (i < s_.size() && s_[i] == '-') {
    neg = true;
    ++i;
  }
  if (i >= s_.size() || s_[i] < '0' || s_[i] > '9') error(i, "expected an integer");
  long long v = 0;
  while (i < s_.size() && s_[i] >= '0' && s_[i] <= '9') v = v * 10 + (s_[i++] - '0');
  *out = neg ? -v : v;
  return i;
}

}  // namespace cs
