#include "runtime/tokenizer/utf8.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "common/error.h"

namespace cs::utf8 {

namespace {

// The valid range of the second byte after a given lead byte (Unicode Table 3-7).
bool second_byte_ok(uint8_t lead, uint8_t b) {
  if (lead == 0xE0) return b >= 0xA0 && b <= 0xBF;
  if (lead == 0xED) return b >= 0x80 && b <= 0x9F;
  if (lead == 0xF0) return b >= 0x90 && b <= 0xBF;
  if (lead == 0xF4) return b >= 0x80 && b <= 0x8F;
  return b >= 0x80 && b <= 0xBF;
}

// Sequence length announced by a lead byte, or 0 when the byte cannot start one.
size_t lead_length(uint8_t c) {
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}

// Number of bytes of a (possibly truncated) well-formed prefix starting at s[i]: the maximal
// subpart. Returns at least 1 for an invalid byte.
size_t maximal_prefix(std::string_view s, size_t i, bool* complete) {
  const uint8_t c = uint8_t(s[i]);
  const size_t n = lead_length(c);
  *complete = false;
  if (n == 0) return 1;
  if (n == 1) {
    *complete = true;
    return 1;
  }
  size_t k = 1;
  while (k < n && i + k < s.size()) {
    const uint8_t b = uint8_t(s[i + k]);
    const bool ok = k == 1 ? second_byte_ok(c, b) : (b >= 0x80 && b <= 0xBF);
    if (!ok) break;
    ++k;
  }
  *complete = k == n;
  return k;
}

}  // namespace

size_t valid_sequence_length(std::string_view s, size_t i) {
  bool complete = false;
  const size_t k = maximal_prefix(s, i, &complete);
  return complete ? k : 0;
}

bool is_valid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (uint8_t(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t k = valid_sequence_length(s, i);
    if (k == 0) return false;
    i += k;
  }
  return true;
}

std::string sanitize(std::string_view s) {
  if (is_valid(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 16);
  size_t i = 0;
  while (i < s.size()) {
    bool complete = false;
    const size_t k = maximal_prefix(s, i, &complete);
    if (complete)
      out.append(s.substr(i, k));
    else
      out.append(kReplacement);
    i += k;
  }
  return out;
}

size_t incomplete_tail(std::string_view s) {
  // A sequence is at most 4 bytes: look at the last 3 for a lead byte whose sequence is cut.
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const size_t i = n - back;
    const uint8_t c = uint8_t(s[i]);
    if (c < 0x80) return 0;
    if (c >= 0xC0) {
      bool complete = false;
      const size_t k = maximal_prefix(s, i, &complete);
      // Incomplete only when every byte up to the end is a valid continuation so far.
      return (!complete && k == back && lead_length(c) > back) ? back : 0;
    }
  }
  return 0;
}

namespace {

std::string nfc_utf8proc(std::string_view s);

// A code point at which NFC may cut the text: a starter (combining class 0) that is already in
// NFC on its own and never composes with the character before it. Text between two such points
// normalises independently, so only stretches holding other characters go through utf8proc.
// (Precomposed letters such as U+00E9 qualify; combining marks, conjoining Hangul vowels and
// trailing consonants, and characters NFC replaces, such as U+212B, do not.)
bool nfc_stable_uncached(char32_t c) {
  if (c < 0x80) return true;
  if (c >= 0x1160 && c <= 0x11FF) return false;  // Hangul jamo V and T compose algorithmically
  if (c >= 0xAC00 && c <= 0xD7A3) return true;   // precomposed syllables are starters
  const utf8proc_property_t* p = utf8proc_get_property(utf8proc_int32_t(c));
  if (p->combining_class != 0) return false;
  // comb_index >= 0x8000 marks a character that composes with a preceding starter.
  if (p->comb_index != UINT16_MAX && p->comb_index >= 0x8000) return false;
  if (p->decomp_seqindex == UINT16_MAX) return true;
  // It has a decomposition: stable only when NFC gives it back unchanged.
  std::string one;
  append_code_point(one, c);
  return nfc_utf8proc(one) == one;
}

bool nfc_stable(char32_t c) {
  // The BMP from a bit table built once; other planes are looked up each time.
  static const std::vector<uint64_t> table = [] {
    std::vector<uint64_t> t(0x10000 / 64, 0);
    for (char32_t k = 0; k < 0x10000; ++k)
      if (nfc_stable_uncached(k)) t[k / 64] |= uint64_t(1) << (k % 64);
    return t;
  }();
  if (c < 0x10000) return (table[c / 64] >> (c % 64)) & 1;
  return nfc_stable_uncached(c);
}

std::string nfc_utf8proc(std::string_view s) {
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), utf8proc_ssize_t(s.size()),
                   &out, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) fail(ErrorKind::kInvalidArgument, "NFC normalisation failed: {}", utf8proc_errmsg(n));
  std::string r(reinterpret_cast<const char*>(out), size_t(n));
  std::free(out);
  return r;
}

}  // namespace

bool needs_nfc(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (uint8_t(s[i]) < 0x80) {
      ++i;
      continue;
    }
    if (!nfc_stable(next_code_point(s, i))) return true;
  }
  return false;
}

std::string nfc(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t done = 0;         // s[0, done) has been written to out
  size_t last_stable = 0;  // start of the last stable character seen
  size_t i = 0;
  while (i < s.size()) {
    if (uint8_t(s[i]) < 0x80) {
      last_stable = i++;
      continue;
    }
    const size_t start = i;
    if (nfc_stable(next_code_point(s, i))) {
      last_stable = start;
      continue;
    }
    // An unstable run: normalise from the last stable character (the starter it may compose
    // with) up to the next stable character, which blocks any further interaction.
    const size_t from = std::max(done, std::min(last_stable, start));
    size_t to = i;
    while (to < s.size()) {
      size_t j = to;
      if (uint8_t(s[j]) < 0x80 || nfc_stable(next_code_point(s, j))) break;
      to = j;
    }
    out.append(s.substr(done, from - done));
    out += nfc_utf8proc(s.substr(from, to - from));
    done = i = to;
    last_stable = to;
  }
  out.append(s.substr(done));
  return out;
}

char32_t next_code_point(std::string_view s, size_t& i) {
  const uint8_t c = uint8_t(s[i]);
  if (c < 0x80) {
    ++i;
    return c;
  }
  const size_t n = lead_length(c);
  char32_t cp = c & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (size_t k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (uint8_t(s[i + k]) & 0x3F);
  i += n ? n : 1;
  return cp;
}

void append_code_point(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | (c >> 6));
    out += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += char(0xE0 | (c >> 12));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  } else {
    out += char(0xF0 | (c >> 18));
    out += char(0x80 | ((c >> 12) & 0x3F));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  }
}

}  // namespace cs::utf8
