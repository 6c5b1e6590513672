#include "offload/vram_plan.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/error.h"
#include "common/units.h"

namespace cs {

uint64_t VramPlan::fixed_bytes() const {
  uint64_t s = 0;
  for (const MemoryItem& i : fixed) s += i.bytes;
  return s;
}

std::string VramPlan::describe() const {
  std::string s;
  for (const MemoryItem& i : fixed)
    s += fmt::format("  {:<28} {:>12}\n", i.name, format_bytes(double(i.bytes)));
  s += fmt::format("  {:<28} {:>12}  ({} x {})\n", "expert slots",
                   format_bytes(double(slots) * double(slot_bytes)), slots,
                   format_bytes(double(slot_bytes)));
  s += fmt::format("  {:<28} {:>12}  of a budget of {}\n", "total", format_bytes(double(total())),
                   format_bytes(double(budget)));
  return s;
}

VramPlan plan_vram(uint64_t budget, std::vector<MemoryItem> fixed, uint64_t slot_bytes,
                   int min_slots, int max_slots, const std::string& what) {
  VramPlan p;
  p.budget = budget;
  p.fixed = std::move(fixed);
  p.slot_bytes = slot_bytes;
  const uint64_t f = p.fixed_bytes();
  const uint64_t room = budget > f ? budget - f : 0;
  const uint64_t n = slot_bytes ? room / slot_bytes : 0;
  p.slots = int(std::min<uint64_t>(n, uint64_t(std::max(0, max_slots))));
  if (f > budget || p.slots < min_slots) {
    VramPlan shown = p;
    shown.slots = std::max(0, p.slots);
    fail(ErrorKind::kOutOfMemory,
         "GPU memory budget of {} is too small: it must hold the resident weights, the KV cache, "
         "the workspaces and at least {} expert slots of {} (one token's experts):\n{}raise {} "
         "or shorten the context",
         format_bytes(double(budget)), min_slots, format_bytes(double(slot_bytes)),
         shown.describe(), what);
  }
  return p;
}

}  // namespace cs
