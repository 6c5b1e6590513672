#include "runtime/tokenizer/gguf_vocab.h"

#include <fmt/format.h>

#include <cstring>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "runtime/tokenizer/json_scan.h"
#include "runtime/tokenizer/pretokenizer.h"

namespace cs {

namespace {

void put_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (uint8_t(c) < 0x20)
          out += fmt::format("\\u{:04x}", unsigned(uint8_t(c)));
        else
          out += c;
    }
  }
  out += '"';
}

void put_key(std::string& out, std::string_view key) {
  if (out.size() > 1) out += ",\n";
  put_string(out, key);
  out += ": ";
}

}  // namespace

std::string gguf_vocab_to_json(const GgufVocab& v) {
  std::string out = "{";
  put_key(out, "tokenizer.ggml.model");
  put_string(out, v.model);
  if (!v.pre.empty()) {
    put_key(out, "tokenizer.ggml.pre");
    put_string(out, v.pre);
  }
  put_key(out, "tokenizer.ggml.tokens");
  out += '[';
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (i) out += ',';
    put_string(out, v.tokens[i]);
  }
  out += ']';
  if (!v.token_type.empty()) {
    put_key(out, "tokenizer.ggml.token_type");
    out += '[';
    for (size_t i = 0; i < v.token_type.size(); ++i)
      out += fmt::format("{}{}", i ? "," : "", v.token_type[i]);
    out += ']';
  }
  if (!v.scores.empty()) {
    put_key(out, "tokenizer.ggml.scores");
    out += '[';
    for (size_t i = 0; i < v.scores.size(); ++i)
      out += fmt::format("{}{:.9g}", i ? "," : "", v.scores[i]);
    out += ']';
  }
  if (!v.merges.empty()) {
    put_key(out, "tokenizer.ggml.merges");
    out += '[';
    for (size_t i = 0; i < v.merges.size(); ++i) {
      if (i) out += ',';
      put_string(out, v.merges[i]);
    }
    out += ']';
  }
  auto put_id = [&](const char* key, const std::optional<int32_t>& id) {
    if (!id) return;
    put_key(out, key);
    out += std::to_string(*id);
  };
  put_id("tokenizer.ggml.bos_token_id", v.bos_token_id);
  put_id("tokenizer.ggml.eos_token_id", v.eos_token_id);
  put_id("tokenizer.ggml.unknown_token_id", v.unknown_token_id);
  put_id("tokenizer.ggml.padding_token_id", v.padding_token_id);
  if (v.add_bos_token) {
    put_key(out, "tokenizer.ggml.add_bos_token");
    out += *v.add_bos_token ? "true" : "false";
  }
  if (!v.chat_template.empty()) {
    put_key(out, "tokenizer.chat_template");
    put_string(out, v.chat_template);
  }
  out += "}\n";
  return out;
}

GgufVocab gguf_vocab_from_json(std::string_view text, std::string_view origin) {
  GgufVocab v;
  JsonScanner sc(text, origin);
  auto strings = [&](size_t p, std::vector<std::string>* dst) {
    std::string s;
    return sc.array(p, [&](size_t q) {
      const size_t e = sc.string(q, &s);
      dst->push_back(s);
      return e;
    });
  };
  auto need = [&](bool ok, const std::string& key, const char* what) {
    if (!ok) fail(ErrorKind::kBadFile, "{}: '{}' must be {}", origin, key, what);
  };
  const size_t end = sc.object(0, [&](const std::string& key, size_t p) -> size_t {
    if (key == "tokenizer.ggml.tokens") return strings(p, &v.tokens);
    if (key == "tokenizer.ggml.merges") return strings(p, &v.merges);
    if (key == "tokenizer.ggml.token_type")
      return sc.array(p, [&](size_t q) {
        long long t = 0;
        const size_t e = sc.integer(q, &t);
        v.token_type.push_back(int32_t(t));
        return e;
      });
    const size_t e = sc.skip(p);
    nlohmann::json val;
    try {
      val = nlohmann::json::parse(sc.span(p, e));
    } catch (const nlohmann::json::exception& ex) {
      fail(ErrorKind::kBadFile, "{}: malformed value of '{}': {}", origin, key, ex.what());
    }
    if (key == "tokenizer.ggml.model") {
      need(val.is_string(), key, "a string");
      v.model = val.get<std::string>();
    } else if (key == "tokenizer.ggml.pre") {
      need(val.is_string(), key, "a string");
      v.pre = val.get<std::string>();
    } else if (key == "tokenizer.ggml.scores") {
      need(val.is_array(), key, "an array of numbers");
      for (const auto& x : val) v.scores.push_back(x.get<float>());
    } else if (key == "tokenizer.chat_template") {
      need(val.is_string(), key, "a string");
      v.chat_template = val.get<std::string>();
    } else if (key == "tokenizer.ggml.add_bos_token") {
      need(val.is_boolean(), key, "true or false");
      v.add_bos_token = val.get<bool>();
    } else if (key.ends_with("_token_id")) {
      need(val.is_number_integer(), key, "an integer");
      const int32_t id = val.get<int32_t>();
      if (key == "tokenizer.ggml.bos_token_id") v.bos_token_id = id;
      if (key == "tokenizer.ggml.eos_token_id") v.eos_token_id = id;
      if (key == "tokenizer.ggml.unknown_token_id") v.unknown_token_id = id;
      if (key == "tokenizer.ggml.padding_token_id") v.padding_token_id = id;
    }
    // Other tokenizer.* keys (add_eos_token, eot_token_id, ...) are kept by GGUF but unused here.
    return e;
  });
  if (sc.ws(end) != text.size()) sc.error(sc.ws(end), "trailing characters");
  if (v.model.empty()) fail(ErrorKind::kBadFile, "{}: missing key 'tokenizer.ggml.model'", origin);
  if (v.tokens.empty())
    fail(ErrorKind::kBadFile, "{}: missing or empty 'tokenizer.ggml.tokens'", origin);
  if (!v.token_type.empty() && v.token_type.size() != v.tokens.size())
    fail(ErrorKind::kBadFile,
         "{}: 'tokenizer.ggml.token_type' has {} entries, expected one per token ({})", origin,
         v.token_type.size(), v.tokens.size());
  return v;
}

std::string gguf_pre_pattern(std::string_view pre, std::string_view origin) {
  if (pre == "qwen2") return std::string(kQwen2Pattern);
  if (pre == "llama-bpe" || pre == "llama3") return std::string(kLlama3Pattern);
  if (pre.empty() || pre == "default" || pre == "gpt2") return std::string(kGpt2Pattern);
  fail(ErrorKind::kUnsupported,
       "{}: tokenizer.ggml.pre '{}' is not supported (expected qwen2, llama-bpe or gpt2)", origin,
       pre);
}

BpeSpec bpe_spec_from_gguf(const GgufVocab& v, std::string_view origin) {
  if (v.model != "gpt2")
    fail(ErrorKind::kUnsupported,
         "{}: tokenizer.ggml.model '{}' is not supported from GGUF metadata (expected gpt2, "
         "byte-level BPE)",
         origin, v.model);
  BpeSpec spec;
  spec.pattern = gguf_pre_pattern(v.pre, origin);
  spec.nfc =
      v.pre == "qwen2";  // Qwen2's tokenizer.json normalises to NFC; GPT-2 and Llama 3 do not
  spec.ignore_merges = v.pre == "llama-bpe" || v.pre == "llama3";
  spec.merges = v.merges;
  spec.tokens.resize(v.tokens.size());
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    const int32_t type = v.token_type.empty() ? 1 : v.token_type[id];
    if (type == int32_t(GgufTokenType::kUnused)) continue;  // [PADn] fillers
    if (type == int32_t(GgufTokenType::kControl) || type == int32_t(GgufTokenType::kUserDefined)) {
      AddedToken t;
      t.id = int32_t(id);
      t.content = v.tokens[id];
      t.special = type == int32_t(GgufTokenType::kControl);
      spec.added.push_back(std::move(t));
      continue;
    }
    spec.tokens[id] = v.tokens[id];
  }
  // Trailing unused ids still count toward the vocabulary (GGUF pads it to the embedding rows).
  spec.info.origin = std::string(origin);
  spec.info.chat_template = v.chat_template;
  auto text_of = [&](const std::optional<int32_t>& id) -> std::string {
    if (!id || *id < 0 || size_t(*id) >= v.tokens.size()) return {};
    return v.tokens[size_t(*id)];
  };
  spec.info.bos_token = text_of(v.bos_token_id);
  spec.info.eos_token = text_of(v.eos_token_id);
  spec.info.add_bos = v.add_bos_token.value_or(false);
  return spec;
}

namespace {

// Protocol-buffer wire format, just enough to write a ModelProto.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += char(uint8_t(v) | 0x80);
    v >>= 7;
  }
  out += char(uint8_t(v));
}
void put_tag(std::string& out, int field, int wire) {
  put_varint(out, uint64_t(field) << 3 | wire);
}
void put_bytes(std::string& out, int field, std::string_view b) {
  put_tag(out, field, 2);
  put_varint(out, b.size());
  out.append(b);
}
void put_int(std::string& out, int field, int64_t v) {
  put_tag(out, field, 0);
  put_varint(out, uint64_t(v));
}
void put_float(std::string& out, int field, float f) {
  put_tag(out, field, 5);
  char b[4];
  std::memcpy(b, &f, 4);
  out.append(b, 4);
}

}  // namespace

std::string sentencepiece_model_from_gguf(const GgufVocab& v, std::string_view origin) {
  if (v.model != "llama")
    fail(ErrorKind::kUnsupported, "{}: tokenizer.ggml.model '{}' is not a SentencePiece vocabulary",
         origin, v.model);
  if (v.scores.size() != v.tokens.size())
    fail(ErrorKind::kBadFile,
         "{}: 'tokenizer.ggml.scores' has {} entries, expected one per token ({})", origin,
         v.scores.size(), v.tokens.size());
  // sentencepiece_model.proto: ModelProto { repeated SentencePiece pieces = 1;
  // TrainerSpec trainer_spec = 2; NormalizerSpec normalizer_spec = 3; }
  // SentencePiece { string piece = 1; float score = 2; Type type = 3; } with the GGUF numbering
  // of types (1 normal ... 6 byte).
  std::string proto;
  bool has_bytes = false;
  int32_t unk = v.unknown_token_id.value_or(-1);
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    int32_t type = v.token_type.empty() ? 1 : v.token_type[i];
    if (type < 1 || type > 6) type = 1;
    if (type == int32_t(GgufTokenType::kByte)) has_bytes = true;
    if (type == int32_t(GgufTokenType::kUnknown) && unk < 0) unk = int32_t(i);
    if (int32_t(i) == unk) type = int32_t(GgufTokenType::kUnknown);
    std::string piece;
    put_bytes(piece, 1, v.tokens[i]);
    put_float(piece, 2, v.scores[i]);
    put_int(piece, 3, type);
    put_bytes(proto, 1, piece);
  }
  if (unk < 0)
    fail(ErrorKind::kBadFile, "{}: a SentencePiece vocabulary needs an unknown token", origin);
  // TrainerSpec: model_type = 3 (BPE = 2), vocab_size = 4, byte_fallback = 35, unk_id = 40,
  // bos_id = 41, eos_id = 42, pad_id = 43.
  std::string trainer;
  put_int(trainer, 3, 2);
  put_int(trainer, 4, int64_t(v.tokens.size()));
  put_int(trainer, 35, has_bytes ? 1 : 0);
  put_int(trainer, 40, unk);
  put_int(trainer, 41, v.bos_token_id.value_or(-1));
  put_int(trainer, 42, v.eos_token_id.value_or(-1));
  put_int(trainer, 43, v.padding_token_id.value_or(-1));
  put_bytes(proto, 2, trainer);
  // NormalizerSpec: name = 1, add_dummy_prefix = 3, remove_extra_whitespaces = 4,
  // escape_whitespaces = 5.
  std::string norm;
  put_bytes(norm, 1, "identity");
  put_int(norm, 3, 1);
  put_int(norm, 4, 0);
  put_int(norm, 5, 1);
  put_bytes(proto, 3, norm);
  return proto;
}

}  // namespace cs
