// Notes for the user (progress, warnings, fallbacks): to a caller's callback when there is one
// (the C API, the chat REPL, tests), else to stderr as "coldstream: <text>".
#pragma once

#include <functional>
#include <string>

namespace cs {

using LogFn = std::function<void(const std::string&)>;

void note(const LogFn& log, const std::string& s);

}  // namespace cs
