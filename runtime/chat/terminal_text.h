// Model text made safe to print on a terminal. A reply is untrusted bytes: a random or hostile
// model can emit escape sequences that move the cursor, clear the screen, retitle the window or
// worse. The chat REPL passes replies through terminal_safe() when its output is a terminal.
//
// Thread-safety: pure function.
#pragma once

#include <string>
#include <string_view>

namespace cs {

// C0 control characters other than newline and tab become caret notation ("^[" for ESC, "^M" for
// carriage return), DEL becomes "^?", and the C1 controls U+0080..U+009F (UTF-8 C2 80..C2 9F,
// which some terminals take as escape sequences) become U+FFFD. Everything else, invalid UTF-8
// included, passes through unchanged.
std::string terminal_safe(std::string_view s);

}  // namespace cs
