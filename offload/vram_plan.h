// Planning GPU memory up front: resident weights, KV cache, workspaces and a reserve for what
// the driver and libraries take (context, cuBLAS workspace, graph pools) are fixed; the rest of
// the budget becomes expert slots. The runtime never allocates past the budget
// (BudgetedBackend enforces it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cs {

struct MemoryItem {
  std::string name;
  uint64_t bytes = 0;
};

struct VramPlan {
  uint64_t budget = 0;
  std::vector<MemoryItem> fixed;
  uint64_t slot_bytes = 0;
  int slots = 0;

  uint64_t fixed_bytes() const;
  uint64_t total() const { return fixed_bytes() + uint64_t(slots) * slot_bytes; }
  std::string describe() const;  // one line per item, slots, total and budget
};

// Slots of `slot_bytes` in what `budget` leaves after `fixed`, at most `max_slots` (every
// expert). Throws cs::Error (kOutOfMemory) listing the items when they exceed the budget or
// leave fewer than `min_slots`; `what` names the setting to change (e.g. "--vram-budget").
VramPlan plan_vram(uint64_t budget, std::vector<MemoryItem> fixed, uint64_t slot_bytes,
                   int min_slots, int max_slots, const std::string& what);

}  // namespace cs
