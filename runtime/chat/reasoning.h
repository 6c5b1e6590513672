// Splits a streamed reply into reasoning (inside a leading <think> ... </think> block) and the
// answer, as text arrives in arbitrary pieces. Tags are recognised across piece boundaries and
// never printed.
//
// Thread-safety: one splitter per reply.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace cs {

enum class ReplyPart { kReasoning, kAnswer };

class ReasoningSplitter {
 public:
  using Sink = std::function<void(ReplyPart, std::string_view)>;
  explicit ReasoningSplitter(Sink sink) : sink_(std::move(sink)) {}
  void push(std::string_view text);
  void finish();  // flushes what is held back

  bool saw_reasoning() const { return saw_think_; }
  const std::string& reasoning() const { return reasoning_; }
  const std::string& answer() const { return answer_; }

 private:
  enum class State { kStart, kReasoningStart, kReasoning, kAnswerStart, kAnswer };
  void out(ReplyPart part, std::string_view text);
  Sink sink_;
  State state_ = State::kStart;
  std::string held_;
  std::string reasoning_, answer_;
  bool saw_think_ = false;
};

}  // namespace cs
