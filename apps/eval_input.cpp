#include "apps/eval_input.h"

#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cs::cli {
namespace {

std::string read_file(const std::string& path, const std::string& flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kNotFound, "{}: cannot open '{}'", flag, path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

std::vector<int32_t> parse_id_list(const std::string& text, const std::string& origin) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (std::isspace(c) || c == ',') {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j])) && text[j] != ',')
      ++j;
    int32_t v = 0;
    auto [p, ec] = std::from_chars(text.data() + i, text.data() + j, v);
    if (ec != std::errc() || p != text.data() + j)
      fail(ErrorKind::kInvalidArgument, "{}: '{}' (item {}) is not a token id", origin,
           text.substr(i, std::min<size_t>(j - i, 40)), ids.size() + 1);
    ids.push_back(v);
    i = j;
  }
  return ids;
}

std::vector<int32_t> load_eval_tokens(const Model& model, const std::string& text_file,
                                      const std::string& ids_file, int64_t max_tokens) {
  if (text_file.empty() == ids_file.empty())
    fail(ErrorKind::kInvalidArgument, "give exactly one of --file TEXT and --ids-file IDS");
  std::vector<int32_t> ids;
  if (!ids_file.empty()) {
    ids = parse_id_list(read_file(ids_file, "--ids-file"), "--ids-file " + ids_file);
  } else {
    const Tokenizer* tok = model.tokenizer();
    if (!tok)
      fail(ErrorKind::kUnsupported,
           "--file: the model at '{}' has no tokenizer; give token ids with --ids-file",
           model.path());
    const std::string text = read_file(text_file, "--file");
    if (tok->bos_id() >= 0) ids.push_back(tok->bos_id());
    const std::vector<int32_t> enc = tok->encode(text, true);
    ids.insert(ids.end(), enc.begin(), enc.end());
  }
  if (max_tokens > 0 && int64_t(ids.size()) > max_tokens) ids.resize(size_t(max_tokens));
  const int V = model.config().vocab_size;
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= V)
      fail(ErrorKind::kInvalidArgument,
           "{}: token {} at position {} is outside the vocabulary of {}",
           ids_file.empty() ? "--file " + text_file : "--ids-file " + ids_file, ids[i], i, V);
  if (ids.size() < 2)
    fail(ErrorKind::kInvalidArgument, "{}: need at least 2 tokens, got {}",
         ids_file.empty() ? "--file " + text_file : "--ids-file " + ids_file, ids.size());
  return ids;
}

}  // namespace cs::cli
