// UTF-8 validation and replacement, incomplete tails, NFC, and the streaming decoder's promise:
// never a broken sequence, whatever the token boundaries.
#include <doctest/doctest.h>
#include <utf8proc.h>

#include <cstdlib>
#include <random>

#include "runtime/tokenizer/stream_decoder.h"
#include "runtime/tokenizer/utf8.h"

using namespace cs;

namespace {

std::string fffd(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += utf8::kReplacement;
  return s;
}

std::string full_nfc(const std::string& s) {
  char* p =
      reinterpret_cast<char*>(utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(s.c_str())));
  std::string r(p);
  std::free(p);
  return r;
}

// A tokenizer whose tokens are single bytes: the hardest case for a streaming decoder.
class ByteTokenizer final : public Tokenizer {
 public:
  std::string kind() const override { return "bytes"; }
  int32_t vocab_size() const override { return 257; }
  std::vector<int32_t> encode(std::string_view text, bool) const override {
    std::vector<int32_t> ids;
    for (char c : text) ids.push_back(uint8_t(c));
    return ids;
  }
  std::string token_bytes(int32_t id) const override {
    return id == 256 ? "<|end|>" : std::string(1, char(id));
  }
  std::optional<int32_t> token_id(std::string_view) const override { return std::nullopt; }
  bool is_special(int32_t id) const override { return id == 256; }
};

}  // namespace

TEST_CASE("sanitize replaces each maximal invalid subpart with one U+FFFD, like Python") {
  // Expected values are what bytes.decode("utf-8", errors="replace") returns.
  CHECK(utf8::sanitize("abc\x80"
                       "def") == "abc" + fffd(1) + "def");
  CHECK(utf8::sanitize("\xe4\xbd\xa0\xe5\xa5!") == "\xe4\xbd\xa0" + fffd(1) + "!");
  CHECK(utf8::sanitize("\xc0\xaf"
                       "A") == fffd(2) + "A");       // overlong: C0 never valid
  CHECK(utf8::sanitize("\xe0\x80\xaf") == fffd(3));  // E0 needs A0..BF next
  CHECK(utf8::sanitize("\xed\xa0\x80"
                       "B") == fffd(3) + "B");  // a surrogate
  CHECK(utf8::sanitize("\xff\xfe"
                       "C") == fffd(2) + "C");
  CHECK(utf8::sanitize("\xf0\x92\x8d \xe4 world") == fffd(1) + " " + fffd(1) + " world");
  CHECK(utf8::sanitize("\xf4\x90\x80\x80") == fffd(4));  // above U+10FFFF
  CHECK(utf8::sanitize("ok \xf0\x9f\x98\x80") == "ok \xf0\x9f\x98\x80");
  CHECK(utf8::is_valid(""));
  CHECK_FALSE(utf8::is_valid("\xc3"));
}

TEST_CASE("incomplete_tail finds a sequence that more bytes could complete") {
  CHECK(utf8::incomplete_tail("abc") == 0);
  CHECK(utf8::incomplete_tail("ab\xe4") == 1);
  CHECK(utf8::incomplete_tail("ab\xe4\xbd") == 2);
  CHECK(utf8::incomplete_tail("ab\xe4\xbd\xa0") == 0);
  CHECK(utf8::incomplete_tail("\xf0\x9f\x98") == 3);
  CHECK(utf8::incomplete_tail("\x80\x80") == 0);   // continuation bytes alone: never complete
  CHECK(utf8::incomplete_tail("a\xe0\x80") == 0);  // E0 80 can never become valid
  CHECK(utf8::incomplete_tail("a\xc0") == 0);      // C0 is never a lead byte
}

TEST_CASE("nfc agrees with utf8proc's full NFC, also on random combining sequences") {
  const std::vector<std::string> cases = {
      "",
      "plain ascii",
      "cafe\xcc\x81",
      "A\xcc\x8a",
      "\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8",
      "\xea\xb0\x80\xe1\x86\xa8",  // LV syllable + T jamo composes to LVT
      "e\xcc\x81\xcc\xa7",
      "a\xcc\x80\xcc\x81\xcc\x82",
      "\xe2\x84\xab",  // Angstrom sign
      "\xef\xac\x80",  // ligature ff: compatibility only, NFC keeps it
      "\xe6\xb7\xb7\xe5\x90\x88 mixed \xcc\x81 start",
      "\xcc\x81\xcc\x81 leading marks"};
  for (const auto& s : cases) {
    CAPTURE(s);
    CHECK(utf8::nfc(s) == full_nfc(s));
  }
  // Random strings over letters, marks, jamo, CJK and ASCII.
  const char32_t pool[] = {'a',   'e',   'A',    ' ',    'z',     0x300,  0x301,  0x327,
                           0x308, 0x30A, 0x1100, 0x1161, 0x11A8,  0xAC00, 0x4E00, 0x212B,
                           0xC5,  0xE9,  0x1E0A, 0x323,  0x1F600, 0x0915, 0x093C, 0x0958};
  std::mt19937 rng(1);
  for (int iter = 0; iter < 2000; ++iter) {
    std::string s;
    const int n = int(rng() % 12);
    for (int i = 0; i < n; ++i) utf8::append_code_point(s, pool[rng() % std::size(pool)]);
    CAPTURE(s);
    REQUIRE(utf8::nfc(s) == full_nfc(s));
    if (!utf8::needs_nfc(s)) REQUIRE(full_nfc(s) == s);
  }
}

TEST_CASE("the streaming decoder holds split characters back and never emits broken UTF-8") {
  ByteTokenizer tok;
  const std::string text =
      "h\xc3\xa9llo \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd!";
  StreamDecoder dec(tok);
  std::string all;
  for (int32_t id : tok.encode(text, true)) {
    const std::string piece = dec.push(id);
    CHECK(utf8::is_valid(piece));
    all += piece;
  }
  all += dec.flush();
  CHECK(all == text);
  // Bytes that can never complete come out as U+FFFD, at once or at the end.
  StreamDecoder d2(tok);
  std::string out;
  for (uint8_t b : {uint8_t('a'), uint8_t(0xE4), uint8_t(0xBD), uint8_t('b'), uint8_t(0x80),
                    uint8_t(0xF0), uint8_t(0x9F)}) {
    const std::string p = d2.push(b);
    CHECK(utf8::is_valid(p));
    out += p;
  }
  CHECK(d2.pending() == 2);
  out += d2.flush();
  CHECK(out == "a" + fffd(1) + "b" + fffd(2));
  // Special tokens print nothing; a leading space can be dropped (SentencePiece).
  StreamDecoder d3(tok, true, true);
  CHECK(d3.push(256).empty());
  CHECK(d3.push(' ').empty());
  CHECK(d3.push('x') == "x");
  CHECK(d3.push(' ') == " ");
}
