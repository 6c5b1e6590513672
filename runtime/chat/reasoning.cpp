#include "runtime/chat/reasoning.h"

namespace cs {

namespace {

constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";

// Length of the longest suffix of s that is a proper prefix of tag.
size_t partial_tag_suffix(std::string_view s, std::string_view tag) {
  for (size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n)
    if (s.substr(s.size() - n) == tag.substr(0, n)) return n;
  return 0;
}

}  // namespace

void ReasoningSplitter::out(ReplyPart part, std::string_view text) {
  if (text.empty()) return;
  (part == ReplyPart::kReasoning ? reasoning_ : answer_).append(text);
  if (sink_) sink_(part, text);
}

void ReasoningSplitter::push(std::string_view text) {
  held_.append(text);
  for (;;) {
    switch (state_) {
      case State::kStart: {
        // Leading newlines may precede the tag; anything else decides.
        const size_t b = held_.find_first_not_of('\n');
        if (b == std::string::npos) return;
        const std::string_view rest = std::string_view(held_).substr(b);
        if (rest.size() < kOpen.size() && kOpen.substr(0, rest.size()) == rest) return;
        if (rest.starts_with(kOpen)) {
          saw_think_ = true;
          held_.erase(0, b + kOpen.size());
          state_ = State::kReasoningStart;
          continue;
        }
        state_ = State::kAnswer;
        continue;
      }
      case State::kReasoningStart:
        // The newline after <think> belongs to the tag.
        if (held_.empty()) return;
        if (held_[0] == '\n') held_.erase(0, 1);
        state_ = State::kReasoning;
        continue;
      case State::kReasoning: {
        const size_t p = held_.find(kClose);
        if (p == std::string::npos) {
          const size_t keep = partial_tag_suffix(held_, kClose);
          // A trailing newline may be the one before </think>: hold it too.
          size_t cut = held_.size() - keep;
          while (cut > 0 && held_[cut - 1] == '\n') --cut;
          out(ReplyPart::kReasoning, std::string_view(held_).substr(0, cut));
          held_.erase(0, cut);
          return;
        }
        std::string_view r = std::string_view(held_).substr(0, p);
        while (!r.empty() && r.back() == '\n') r.remove_suffix(1);
        out(ReplyPart::kReasoning, r);
        held_.erase(0, p + kClose.size());
        state_ = State::kAnswerStart;
        continue;
      }
      case State::kAnswerStart: {
        const size_t b = held_.find_first_not_of('\n');
        if (b == std::string::npos) {
          held_.clear();
          return;
        }
        held_.erase(0, b);
        state_ = State::kAnswer;
        continue;
      }
      case State::kAnswer:
        out(ReplyPart::kAnswer, held_);
        held_.clear();
        return;
    }
  }
}

void ReasoningSplitter::finish() {
  if (state_ == State::kReasoning || state_ == State::kReasoningStart) {
    out(ReplyPart::kReasoning, held_);  // a reply cut off inside its reasoning
  } else if (state_ != State::kAnswerStart) {
    out(ReplyPart::kAnswer, held_);
  }
  held_.clear();
}

}  // namespace cs
