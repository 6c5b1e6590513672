// A short fuzz run in the normal test suite (no libFuzzer needed): every seed of each target's
// corpus, then deterministic mutations of it (truncations, byte flips, overwritten 8-byte words).
// Usage: fuzz_replay CORPUS_DIR [MUTATIONS_PER_SEED]
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_targets.h"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: fuzz_replay CORPUS_DIR [MUTATIONS_PER_SEED]\n");
    return 2;
  }
  const int mutations = argc > 2 ? std::stoi(argv[2]) : 200;
  const std::pair<const char*, int (*)(const uint8_t*, size_t)> targets[] = {
      {"safetensors", cs::fuzz::safetensors},
      {"gguf", cs::fuzz::gguf},
      {"packed", cs::fuzz::packed}};
  size_t runs = 0;
  for (const auto& [name, fn] : targets) {
    const fs::path dir = fs::path(argv[1]) / name;
    size_t seeds = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
      std::ifstream in(e.path(), std::ios::binary);
      const std::string seed((std::istreambuf_iterator<char>(in)), {});
      ++seeds;
      std::mt19937_64 rng(std::hash<std::string>{}(e.path().filename().string()));
      for (int m = -1; m < mutations; ++m) {
        std::vector<uint8_t> b(seed.begin(), seed.end());
        if (m >= 0 && !b.empty()) {
          switch (rng() % 3) {
            case 0:
              b.resize(rng() % b.size());
              break;
            case 1:
              for (int k = 0; k < 4; ++k) b[rng() % b.size()] ^= uint8_t(1u << (rng() % 8));
              break;
            default: {
              const size_t at = rng() % b.size();
              const uint64_t v = rng() % 4 == 0 ? ~0ull : rng();
              for (size_t k = 0; k < 8 && at + k < b.size(); ++k) b[at + k] = uint8_t(v >> (8 * k));
            }
          }
        }
        fn(b.data(), b.size());
        ++runs;
      }
    }
    if (seeds == 0) {
      fmt::print(stderr, "fuzz_replay: no seeds in {}\n", dir.string());
      return 1;
    }
  }
  fmt::print("fuzz_replay: {} inputs, no crash\n", runs);
  return 0;
}
