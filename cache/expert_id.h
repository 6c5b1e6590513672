// The identity of an expert: (layer, expert). Sizes and bytes live elsewhere (the model file);
// cache/ reasons only about ids.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace cs {

struct ExpertId {
  int32_t layer = -1;
  int32_t expert = -1;

  bool valid() const { return layer >= 0 && expert >= 0; }
  auto operator<=>(const ExpertId&) const = default;
  // A dense index given the number of experts per layer.
  size_t index(int n_experts) const { return size_t(layer) * size_t(n_experts) + size_t(expert); }
};

inline constexpr ExpertId kNoExpert{};

std::string to_string(ExpertId id);  // "L3.E17"

struct ExpertIdHash {
  size_t operator()(ExpertId id) const {
    return std::hash<uint64_t>()((uint64_t(uint32_t(id.layer)) << 32) | uint32_t(id.expert));
  }
};

// The cache's clock: one tick per MoE layer executed. tick = step * n_layers + layer, where a
// step is one forward pass over all layers (one decoded token or one prefill chunk). The
// router-frequency decay counts steps; Belady's future trace is indexed by ticks.
struct CacheClock {
  uint64_t step = 0;
  int layer = 0;
  uint64_t tick(int n_layers) const { return step * uint64_t(n_layers) + uint64_t(layer); }
};

}  // namespace cs
