#include "cache/plan.h"

#include <fmt/format.h>

namespace cs {

const char* miss_path_name(MissPath p) {
  return p == MissPath::kStream ? "stream" : "cpu";
}

const char* offload_mode_name(OffloadMode m) {
  switch (m) {
    case OffloadMode::kHybrid:
      return "hybrid";
    case OffloadMode::kCpu:
      return "cpu";
    case OffloadMode::kStream:
      return "stream";
  }
  return "?";
}

std::optional<OffloadMode> parse_offload_mode(std::string_view name) {
  for (OffloadMode m : {OffloadMode::kHybrid, OffloadMode::kCpu, OffloadMode::kStream})
    if (name == offload_mode_name(m)) return m;
  return std::nullopt;
}

std::optional<MissPath> parse_miss_path(std::string_view name) {
  if (name == "stream") return MissPath::kStream;
  if (name == "cpu") return MissPath::kCpu;
  return std::nullopt;
}

std::vector<ExpertId> LayerPlan::gpu_evictions() const {
  std::vector<ExpertId> out;
  for (const PlanPass& p : passes)
    for (const PlanCopy& c : p.demand)
      if (c.evicted.valid()) out.push_back(c.evicted);
  for (const PlanCopy& c : prefetches)
    if (c.evicted.valid()) out.push_back(c.evicted);
  return out;
}

std::vector<ExpertId> LayerPlan::host_evictions() const {
  std::vector<ExpertId> out;
  auto add = [&](const HostFetch& h) {
    if (h.evicted.valid()) out.push_back(h.evicted);
  };
  for (const PlanPass& p : passes) {
    for (const PlanCopy& c : p.demand) add(c.host);
    for (const PlanCpu& c : p.cpu) add(c.host);
  }
  for (const PlanCopy& c : prefetches) add(c.host);
  return out;
}

std::string LayerPlan::describe() const {
  std::string s = fmt::format("layer {} tick {}{}\n", layer, tick, drain ? " DRAIN" : "");
  auto copy = [](const char* what, const PlanCopy& c) {
    return fmt::format("  {} {} -> slot {}{}{}\n", what, to_string(c.id), c.slot,
                       c.evicted.valid() ? " evicting " + to_string(c.evicted) : "",
                       c.host.needed() ? fmt::format(" (nvme -> host slot {})", c.host.host_slot)
                       : c.host.host_slot >= 0
                           ? fmt::format(" (from host slot {})", c.host.host_slot)
                           : "");
  };
  for (const PlanPass& p : passes) {
    s += fmt::format(" pass tokens [{}, {})\n", p.t_begin, p.t_end);
    for (const PlanHit& h : p.hits)
      s += fmt::format("  hit {} slot {}{}\n", to_string(h.id), h.slot,
                       h.prefetched ? " (prefetched)" : "");
    for (const PlanHit& h : p.waits)
      s += fmt::format("  wait {} slot {}\n", to_string(h.id), h.slot);
    for (const PlanCopy& c : p.demand) s += copy("demand", c);
    for (const PlanCpu& c : p.cpu)
      s += fmt::format("  cpu {} ({} tokens){}\n", to_string(c.id), c.tokens,
                       c.host.needed() ? " (nvme -> host)" : "");
  }
  for (const PlanCopy& c : prefetches) s += copy("prefetch", c);
  return s;
}

}  // namespace cs
