#include "runtime/tokenizer/sentencepiece.h"

#include <sentencepiece_processor.h>

#include "common/error.h"

namespace cs {

namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581, SentencePiece's space

std::string piece_text(std::string_view piece) {
  std::string out;
  size_t i = 0;
  while (i < piece.size()) {
    if (piece.compare(i, kSpaceMark.size(), kSpaceMark) == 0) {
      out += ' ';
      i += kSpaceMark.size();
    } else {
      out += piece[i++];
    }
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(std::string_view model, std::string_view origin)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  const auto status = sp_->LoadFromSerializedProto({model.data(), model.size()});
  if (!status.ok())
    fail(ErrorKind::kBadFile, "{}: not a SentencePiece model: {}", origin, status.ToString());
  const int n = sp_->GetPieceSize();
  bytes_.resize(size_t(n));
  std::vector<AddedToken> control;
  for (int id = 0; id < n; ++id) {
    const std::string& piece = sp_->IdToPiece(id);
    if (sp_->IsByte(id) && piece.size() == 6 && piece.rfind("<0x", 0) == 0) {
      const int hi = hex_value(piece[3]), lo = hex_value(piece[4]);
      if (hi >= 0 && lo >= 0) bytes_[id] = std::string(1, char(hi * 16 + lo));
      continue;
    }
    if (sp_->IsControl(id)) {
      bytes_[id] = piece;
      AddedToken t;
      t.id = id;
      t.content = piece;
      t.special = true;
      control.push_back(std::move(t));
      continue;
    }
    bytes_[id] = sp_->IsUnknown(id) ? std::string(" \xE2\x81\x87 ") : piece_text(piece);
  }
  control_ = AddedTokenMatcher(std::move(control));
  // The normaliser spec is not in the public headers: ask SentencePiece what it does with "a".
  std::vector<std::string> probe;
  sp_->Encode("a", &probe);
  dummy_prefix_ = !probe.empty() && probe[0].rfind(kSpaceMark, 0) == 0;
  TokenizerInfo info;
  info.origin = std::string(origin);
  if (sp_->bos_id() >= 0) {
    info.bos_token = sp_->IdToPiece(sp_->bos_id());
    info.add_bos = true;
  }
  if (sp_->eos_id() >= 0) info.eos_token = sp_->IdToPiece(sp_->eos_id());
  set_info(std::move(info));
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

int32_t SentencePieceTokenizer::vocab_size() const {
  return int32_t(bytes_.size());
}

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text,
                                                    bool parse_special) const {
  std::vector<int32_t> out;
  auto run = [&](std::string_view t) {
    std::vector<int> ids;
    sp_->Encode({t.data(), t.size()}, &ids);
    out.insert(out.end(), ids.begin(), ids.end());
  };
  if (!parse_special || control_.empty()) {
    run(text);
    return out;
  }
  control_.split(
      text, true, false, [&](size_t b, size_t n) { run(text.substr(b, n)); },
      [&](int32_t id) { out.push_back(id); });
  return out;
}

std::string SentencePieceTokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= int32_t(bytes_.size())) return {};
  return bytes_[id];
}

std::optional<int32_t> SentencePieceTokenizer::token_id(std::string_view piece) const {
  const int id = sp_->PieceToId({piece.data(), piece.size()});
  // PieceToId answers unk for anything unknown: only an exact piece counts.
  if (id < 0 || sp_->IdToPiece(id) != piece) return std::nullopt;
  return id;
}

bool SentencePieceTokenizer::is_special(int32_t id) const {
  return id >= 0 && id < int32_t(bytes_.size()) && (sp_->IsControl(id) || sp_->IsUnknown(id));
}

}  // namespace cs
