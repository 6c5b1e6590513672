#include "runtime/tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "common/error.h"

namespace cs {

namespace {

// Unicode White_Space, which is what Oniguruma's \s matches in UTF-8 mode.
constexpr std::string_view kSpaceSet =
    R"(\t\n\x0B\f\r\x20\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

}  // namespace

std::string oniguruma_to_pcre2(std::string_view p) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char n = p[i + 1];
      if (n == 's') {
        out += in_class ? std::string(kSpaceSet) : "[" + std::string(kSpaceSet) + "]";
      } else if (n == 'S' && !in_class) {
        out += "[^" + std::string(kSpaceSet) + "]";
      } else {
        out += c;
        out += n;
      }
      ++i;
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

struct Pretokenizer::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Impl() {
    if (code) pcre2_code_free(code);
  }
};

Pretokenizer::Pretokenizer(std::string_view pattern, std::string_view origin)
    : pattern_(pattern), impl_(std::make_unique<Impl>()) {
  const std::string p = oniguruma_to_pcre2(pattern);
  int err = 0;
  PCRE2_SIZE off = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &off, nullptr);
  if (!impl_->code)
    fail(ErrorKind::kBadFile, "{}: pre-tokenizer pattern '{}' does not compile at offset {}: {}",
         origin, pattern, size_t(off), pcre2_message(err));
  // JIT is an optimisation: without it (a platform PCRE2 lacks it for) matching still works.
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

Pretokenizer::~Pretokenizer() = default;

bool Pretokenizer::next_match(std::string_view text, size_t pos, size_t* begin, size_t* end) const {
  // Match data is not shareable between threads: one block per thread, sized for any pattern
  // (only the whole-match offsets are read).
  thread_local struct MatchData {
    pcre2_match_data* md = pcre2_match_data_create(32, nullptr);
    ~MatchData() { pcre2_match_data_free(md); }
  } tls;
  while (pos < text.size()) {
    // pcre2_jit_match skips the argument checks of pcre2_match: a third of the cost per piece.
    const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    const int rc = impl_->jit ? pcre2_jit_match(impl_->code, subject, text.size(), pos,
                                                PCRE2_NO_UTF_CHECK, tls.md, nullptr)
                              : pcre2_match(impl_->code, subject, text.size(), pos,
                                            PCRE2_NO_UTF_CHECK, tls.md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc < 0 && rc != 0)
      fail(ErrorKind::kInternal, "pre-tokenizer: PCRE2 match failed: {}", pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(tls.md);
    if (ov[1] > ov[0]) {
      *begin = ov[0];
      *end = ov[1];
      return true;
    }
    // An empty match is no piece: search again from the next character (the skipped text
    // becomes part of a gap).
    pos = ov[0] + 1;
    while (pos < text.size() && (uint8_t(text[pos]) & 0xC0) == 0x80) ++pos;
  }
  return false;
}

}  // namespace cs
