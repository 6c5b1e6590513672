// The tokenizer test corpus (tests/fixtures/tokenizer/corpus.json), expanded: `repeat` applied and
// `bytes_hex` decoded to raw (possibly invalid UTF-8) bytes.
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/common/fixtures.h"

namespace cs::test {

struct CorpusEntry {
  std::string name, text;
};

inline std::vector<CorpusEntry> tokenizer_corpus() {
  std::ifstream in(fixture("tokenizer/corpus.json"));
  const nlohmann::json j = nlohmann::json::parse(in);
  std::vector<CorpusEntry> out;
  for (const auto& e : j["entries"]) {
    CorpusEntry c;
    c.name = e["name"].get<std::string>();
    if (e.contains("bytes_hex")) {
      const std::string hex = e["bytes_hex"].get<std::string>();
      for (size_t i = 0; i + 1 < hex.size(); i += 2)
        c.text += char(std::stoi(hex.substr(i, 2), nullptr, 16));
    } else {
      const std::string t = e["text"].get<std::string>();
      for (int r = 0; r < e.value("repeat", 1); ++r) c.text += t;
    }
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace cs::test
