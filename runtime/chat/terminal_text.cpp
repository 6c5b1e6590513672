#include "runtime/chat/terminal_text.h"

namespace cs {

std::string terminal_safe(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
      out += '^';
      out += c == 0x7f ? '?' : char(c + 0x40);
    } else if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(s[i + 1]) <= 0x9f) {
      out += "\xef\xbf\xbd";
      ++i;
    } else {
      out += char(c);
    }
  }
  return out;
}

}  // namespace cs
