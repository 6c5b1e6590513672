// Errors that end an operation (a bad file, a bad config, a failed read after retries).
//
// Policy (see docs/DEVELOPERS.md): code inside the project throws cs::Error for errors that
// end the operation the caller asked for; the CLI and the C API catch it at their edge, so no
// exception crosses the public boundary. Messages name the file, field or flag and say what was
// expected. Errors that callers routinely handle (a short read to retry) are plain values.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace cs {

// What kind of failure, so the C API can map it to a status code.
enum class ErrorKind {
  kInvalidArgument,  // a bad flag, parameter or token id
  kBadFile,          // a file that is malformed, truncated or fails a checksum
  kNotFound,         // a missing file or tensor
  kUnsupported,      // a valid file we cannot run (architecture, data type)
  kIo,               // the operating system refused a read or write
  kOutOfMemory,      // a budget too small, an allocation that failed
  kCancelled,        // the caller asked to stop
  kDevice,           // a CUDA error
  kContextFull,      // the conversation no longer fits the context window
  kInternal,
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string message)
      : std::runtime_error(std::move(message)), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

template <typename... Args>
[[noreturn]] void fail(ErrorKind kind, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(kind, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace cs
