#include "offload/fault_injection.h"

#include <cerrno>
#include <thread>

namespace cs {

void ScriptedFaults::add(ExpertId id, FaultKind kind, int times, std::chrono::microseconds delay,
                         bool prefetch_only) {
  std::lock_guard<std::mutex> lock(mu_);
  rules_.insert({id, Rule{kind, times, delay, prefetch_only}});
}

void ScriptedFaults::on_read(const ReadEvent& ev, int& result) {
  std::chrono::microseconds sleep{0};
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [b, e] = rules_.equal_range(ev.id);
    for (auto it = b; it != e; ++it) {
      Rule& r = it->second;
      if ((r.times >= 0 && r.fired >= r.times) || (r.prefetch_only && !ev.prefetch)) continue;
      ++r.fired;
      switch (r.kind) {
        case FaultKind::kError:
          result = -EIO;
          break;
        case FaultKind::kShort:
          if (result > 0) result = result / 2 / 4096 * 4096;
          break;
        case FaultKind::kCorrupt:
          if (result > 0) static_cast<unsigned char*>(ev.buffer)[result / 2] ^= 0x5A;
          break;
        case FaultKind::kDelay:
          sleep += r.delay;
          break;
      }
    }
  }
  if (sleep.count() > 0) std::this_thread::sleep_for(sleep);
}

int ScriptedFaults::fired(ExpertId id) const {
  std::lock_guard<std::mutex> lock(mu_);
  int n = 0;
  auto [b, e] = rules_.equal_range(id);
  for (auto it = b; it != e; ++it) n += it->second.fired;
  return n;
}

}  // namespace cs
