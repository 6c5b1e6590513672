// UTF-8 helpers shared by the tokenizers and the streaming decoder: validation with the
// replacement policy of Python's bytes.decode(errors="replace") (one U+FFFD per maximal invalid
// subpart, as Unicode recommends), the length of an incomplete sequence at the end of a buffer,
// and NFC normalisation through utf8proc.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace cs::utf8 {

inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 sequence starting at s[i], or 0 when the bytes there are not one
// (a stray continuation byte, an overlong form, a surrogate, a truncated sequence).
size_t valid_sequence_length(std::string_view s, size_t i);

// True when every byte of `s` belongs to a valid UTF-8 sequence.
bool is_valid(std::string_view s);

// `s` with each maximal invalid subpart replaced by U+FFFD (what Python's
// bytes.decode("utf-8", errors="replace") produces). Valid input is returned unchanged.
std::string sanitize(std::string_view s);

// How many bytes at the end of `s` form the beginning of a UTF-8 sequence that more bytes could
// still complete (0 to 3). Bytes before that point are complete characters or invalid.
size_t incomplete_tail(std::string_view s);

// False when valid UTF-8 `s` is certainly in NFC already: every character is a starter with no
// decomposition that never composes with the character before it (ASCII, CJK ideographs, most
// letters). True means nfc() may change it.
bool needs_nfc(std::string_view s);

// Unicode NFC of valid UTF-8 text. Only the stretches around characters that may change are
// passed through utf8proc, so text that is mostly NFC costs little more than a scan.
std::string nfc(std::string_view s);

// Decodes one code point from valid UTF-8 at s[i]; advances i.
char32_t next_code_point(std::string_view s, size_t& i);
// Appends the UTF-8 encoding of a code point.
void append_code_point(std::string& out, char32_t c);

}  // namespace cs::utf8
