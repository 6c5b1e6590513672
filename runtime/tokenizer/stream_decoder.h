// Turns generated token ids into printable text one token at a time. A character whose UTF-8
// bytes span several tokens (byte-level BPE splits CJK and emoji this way) is held back until it
// is complete, so the output never contains a broken sequence; bytes that can never complete are
// printed as U+FFFD.
//
// Thread-safety: one decoder per stream; not shared.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/tokenizer/tokenizer.h"

namespace cs {

class StreamDecoder {
 public:
  // With `skip_special`, control tokens print nothing. With `strip_leading_space`, one space at
  // the very start of the stream is dropped (SentencePiece's dummy prefix on a reply).
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = true,
                         bool strip_leading_space = false)
      : tok_(&tokenizer), skip_special_(skip_special), strip_space_(strip_leading_space) {}

  // Appends one token; returns the text that became complete (often empty or one character).
  std::string push(int32_t id);
  // Returns what is still held back, an incomplete sequence as U+FFFD, and starts over.
  std::string flush();
  // Bytes held back waiting for the rest of a character.
  size_t pending() const { return pending_.size(); }

 private:
  std::string emit(std::string text);
  const Tokenizer* tok_;
  bool skip_special_;
  bool strip_space_;
  bool started_ = false;
  std::string pending_;
};

}  // namespace cs
