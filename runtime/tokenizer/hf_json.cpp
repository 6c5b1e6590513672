#include "runtime/tokenizer/hf_json.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "runtime/tokenizer/json_scan.h"
#include "runtime/tokenizer/pretokenizer.h"

namespace cs {

namespace {

using nlohmann::json;

json parse_small(std::string_view text, std::string_view origin, std::string_view field) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(ErrorKind::kBadFile, "{}: malformed JSON in '{}': {}", origin, field, e.what());
  }
}

std::string str_field(const json& j, const char* key, std::string_view origin,
                      std::string_view where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string())
    fail(ErrorKind::kBadFile, "{}: '{}.{}' must be a string", origin, where, key);
  return it->get<std::string>();
}

void apply_normalizer(const json& n, std::string_view origin, BpeSpec* spec) {
  if (n.is_null()) return;
  const std::string type = str_field(n, "type", origin, "normalizer");
  if (type == "NFC") {
    spec->nfc = true;
    return;
  }
  if (type == "Sequence" && n.contains("normalizers") && n["normalizers"].is_array()) {
    for (const json& m : n["normalizers"]) apply_normalizer(m, origin, spec);
    return;
  }
  fail(ErrorKind::kUnsupported,
       "{}: normalizer '{}' is not supported for byte-level BPE (expected null or NFC)", origin,
       type);
}

void apply_pre_tokenizer(const json& p, std::string_view origin, BpeSpec* spec, bool* byte_level) {
  if (p.is_null()) return;
  const std::string type = str_field(p, "type", origin, "pre_tokenizer");
  if (type == "Sequence") {
    for (const json& q : p.value("pretokenizers", json::array()))
      apply_pre_tokenizer(q, origin, spec, byte_level);
    return;
  }
  if (type == "Split") {
    if (!spec->pattern.empty())
      fail(ErrorKind::kUnsupported, "{}: more than one Split pre-tokenizer is not supported",
           origin);
    const json& pat = p.value("pattern", json::object());
    if (!pat.contains("Regex") || !pat["Regex"].is_string())
      fail(ErrorKind::kUnsupported,
           "{}: pre_tokenizer Split needs a 'pattern.Regex' string (string patterns are not "
           "supported)",
           origin);
    const std::string behavior = p.value("behavior", "Isolated");
    if (behavior != "Isolated" || p.value("invert", false))
      fail(ErrorKind::kUnsupported,
           "{}: pre_tokenizer Split with behavior '{}'{} is not supported (expected Isolated)",
           origin, behavior, p.value("invert", false) ? " and invert" : "");
    spec->pattern = pat["Regex"].get<std::string>();
    return;
  }
  if (type == "ByteLevel") {
    *byte_level = true;
    if (p.value("add_prefix_space", false))
      fail(ErrorKind::kUnsupported, "{}: ByteLevel add_prefix_space = true is not supported",
           origin);
    if (p.value("use_regex", true)) {
      if (!spec->pattern.empty())
        fail(ErrorKind::kUnsupported,
             "{}: a Split pre-tokenizer followed by ByteLevel use_regex = true is not supported",
             origin);
      spec->pattern = std::string(kGpt2Pattern);
    }
    return;
  }
  fail(ErrorKind::kUnsupported,
       "{}: pre-tokenizer '{}' is not supported (expected Split, ByteLevel or a Sequence of them)",
       origin, type);
}

std::string token_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return {};
}

}  // namespace

BpeSpec parse_hf_tokenizer_json(std::string_view text, std::string_view origin) {
  BpeSpec spec;
  JsonScanner sc(text, origin);
  bool have_model = false, byte_level = false;
  std::string model_type;
  json normalizer, pre_tokenizer, added;
  std::string key;
  size_t n_vocab = 0;
  const size_t end = sc.object(0, [&](const std::string& k, size_t v) -> size_t {
    const size_t e = sc.skip(v);
    if (k == "normalizer")
      normalizer = parse_small(sc.span(v, e), origin, k);
    else if (k == "pre_tokenizer")
      pre_tokenizer = parse_small(sc.span(v, e), origin, k);
    else if (k == "added_tokens")
      added = parse_small(sc.span(v, e), origin, k);
    else if (k == "model") {
      have_model = true;
      return sc.object(v, [&](const std::string& mk, size_t mv) -> size_t {
        if (mk == "vocab") {
          // Not an object: another model's vocabulary (Unigram's is a list); the type check
          // below names the model.
          if (!sc.at(mv, '{')) return sc.skip(mv);
          spec.tokens.reserve(160000);
          return sc.object(mv, [&](const std::string& tok, size_t iv) -> size_t {
            long long id = 0;
            const size_t ie = sc.integer(iv, &id);
            if (id < 0 || id > 100000000) sc.error(iv, "token id out of range");
            if (size_t(id) >= spec.tokens.size()) spec.tokens.resize(size_t(id) + 1);
            spec.tokens[size_t(id)] = tok;
            ++n_vocab;
            return ie;
          });
        }
        if (mk == "merges") {
          spec.merges.reserve(160000);
          std::string a, b;
          return sc.array(mv, [&](size_t p) -> size_t {
            if (sc.at(p, '"')) {  // "left right"
              const size_t q = sc.string(p, &a);
              spec.merges.push_back(a);
              return q;
            }
            // ["left", "right"] (tokenizers >= 0.20)
            size_t q = sc.expect(p, '[');
            q = sc.string(q, &a);
            q = sc.expect(q, ',');
            q = sc.string(q, &b);
            q = sc.expect(q, ']');
            a += ' ';
            a += b;
            spec.merges.push_back(a);
            return q;
          });
        }
        const size_t me = sc.skip(mv);
        const json val = parse_small(sc.span(mv, me), origin, "model." + mk);
        if (mk == "ignore_merges" && val.is_boolean()) spec.ignore_merges = val.get<bool>();
        if (mk == "type") model_type = val.is_string() ? val.get<std::string>() : "";
        if (mk == "byte_fallback" && val.is_boolean() && val.get<bool>())
          fail(ErrorKind::kUnsupported,
               "{}: 'model.byte_fallback' = true is not supported for byte-level BPE", origin);
        if ((mk == "continuing_subword_prefix" || mk == "end_of_word_suffix") && val.is_string() &&
            !val.get<std::string>().empty())
          fail(ErrorKind::kUnsupported, "{}: 'model.{}' is not supported", origin, mk);
        if (mk == "dropout" && val.is_number() && val.get<double>() > 0)
          fail(ErrorKind::kUnsupported, "{}: BPE dropout is not supported", origin);
        return me;
      });
    }
    return e;
  });
  if (sc.ws(end) != text.size()) sc.error(sc.ws(end), "trailing characters");
  if (!have_model) fail(ErrorKind::kBadFile, "{}: missing field 'model'", origin);
  if (model_type != "BPE")
    fail(ErrorKind::kUnsupported,
         "{}: 'model.type' is '{}'; only BPE tokenizer.json files are supported (use "
         "tokenizer.model for SentencePiece models)",
         origin, model_type);
  if (n_vocab == 0)
    fail(ErrorKind::kBadFile, "{}: 'model.vocab' is missing, empty or not an object of token: id",
         origin);
  apply_normalizer(normalizer, origin, &spec);
  apply_pre_tokenizer(pre_tokenizer, origin, &spec, &byte_level);
  if (!byte_level)
    fail(ErrorKind::kUnsupported,
         "{}: only byte-level BPE is supported (the pre_tokenizer has no ByteLevel step)", origin);
  if (added.is_array())
    for (const json& a : added) {
      AddedToken t;
      if (!a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
          !a["content"].is_string())
        fail(ErrorKind::kBadFile,
             "{}: each of 'added_tokens' needs an integer 'id' and a "
             "string 'content'",
             origin);
      t.id = a["id"].get<int32_t>();
      t.content = a["content"].get<std::string>();
      t.special = a.value("special", false);
      t.lstrip = a.value("lstrip", false);
      t.rstrip = a.value("rstrip", false);
      t.single_word = a.value("single_word", false);
      t.normalized = a.value("normalized", !t.special);
      spec.added.push_back(std::move(t));
    }
  spec.info.origin = std::string(origin);
  return spec;
}

void apply_hf_tokenizer_config(std::string_view text, std::string_view origin,
                               TokenizerInfo* info) {
  const json j = parse_small(text, origin, "tokenizer_config");
  if (!j.is_object()) fail(ErrorKind::kBadFile, "{}: expected a JSON object", origin);
  if (auto it = j.find("chat_template"); it != j.end() && !it->is_null()) {
    if (it->is_string()) {
      info->chat_template = it->get<std::string>();
    } else if (it->is_array()) {  // [{"name": "default", "template": "..."}, ...]
      for (const json& t : *it)
        if (t.is_object() && t.value("name", "") == "default")
          info->chat_template = t.value("template", "");
    } else {
      fail(ErrorKind::kBadFile, "{}: 'chat_template' must be a string or a list of templates",
           origin);
    }
  }
  if (auto it = j.find("bos_token"); it != j.end()) info->bos_token = token_text(*it);
  if (auto it = j.find("eos_token"); it != j.end()) info->eos_token = token_text(*it);
  if (auto it = j.find("add_bos_token"); it != j.end() && it->is_boolean())
    info->add_bos = it->get<bool>();
}

}  // namespace cs
