#include "cache/hot_set.h"

#include <charconv>
#include <set>

#include "common/error.h"

namespace cs {
namespace {

std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

template <typename T>
bool parse_num(std::string_view w, T& v) {
  auto [p, ec] = std::from_chars(w.data(), w.data() + w.size(), v);
  return ec == std::errc() && p == w.data() + w.size();
}

}  // namespace

std::vector<HotSetEntry> parse_hot_set(std::string_view text, std::string_view origin, int n_layers,
                                       int n_experts) {
  std::vector<HotSetEntry> out;
  std::set<ExpertId> seen;
  size_t pos = 0;
  int line_no = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (const size_t hash = line.find('#'); hash != std::string_view::npos) {
      const std::string_view comment = line.substr(hash);
      if (line_no == 1 && comment.find("hot set v") != std::string_view::npos &&
          comment.find("hot set v1") == std::string_view::npos)
        fail(ErrorKind::kBadFile, "{}:1: unsupported hot-set version (expected 'hot set v1')",
             origin);
      line = line.substr(0, hash);
    }
    const auto w = words(line);
    if (w.empty()) continue;
    HotSetEntry e;
    if (w.size() > 3 || w.size() < 2 || !parse_num(w[0], e.id.layer) ||
        !parse_num(w[1], e.id.expert) || (w.size() == 3 && !parse_num(w[2], e.score)))
      fail(ErrorKind::kBadFile, "{}:{}: expected '<layer> <expert> [<score>]', got '{}'", origin,
           line_no, line);
    if (e.id.layer < 0 || e.id.layer >= n_layers || e.id.expert < 0 || e.id.expert >= n_experts)
      fail(ErrorKind::kBadFile, "{}:{}: expert {} is outside the model ({} layers x {} experts)",
           origin, line_no, to_string(e.id), n_layers, n_experts);
    if (seen.insert(e.id).second) out.push_back(e);
    if (end == text.size()) break;
  }
  return out;
}

std::string format_hot_set(const std::vector<HotSetEntry>& entries) {
  std::string s = "# coldstream hot set v1\n# layer expert score\n";
  for (const HotSetEntry& e : entries)
    s += fmt::format("{} {} {:.6g}\n", e.id.layer, e.id.expert, e.score);
  return s;
}

}  // namespace cs
