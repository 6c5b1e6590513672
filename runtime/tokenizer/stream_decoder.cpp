#include "runtime/tokenizer/stream_decoder.h"

#include "runtime/tokenizer/utf8.h"

namespace cs {

std::string StreamDecoder::emit(std::string text) {
  if (!started_ && !text.empty()) {
    started_ = true;
    if (strip_space_ && text[0] == ' ') text.erase(0, 1);
  }
  return text;
}

std::string StreamDecoder::push(int32_t id) {
  if (skip_special_ && tok_->is_special(id)) return {};
  pending_ += tok_->token_bytes(id);
  const size_t keep = utf8::incomplete_tail(pending_);
  std::string ready = utf8::sanitize(std::string_view(pending_).substr(0, pending_.size() - keep));
  pending_.erase(0, pending_.size() - keep);
  return emit(std::move(ready));
}

std::string StreamDecoder::flush() {
  std::string rest = utf8::sanitize(pending_);
  pending_.clear();
  std::string out = emit(std::move(rest));
  started_ = false;
  return out;
}

}  // namespace cs
