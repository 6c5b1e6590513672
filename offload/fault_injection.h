// Fault injection for the NVMe tier (leveldb's EnvWrapper idea): an injector sees every
// completed read before the reader does and may fail it, shorten it, corrupt the bytes that
// arrived or delay it. Tests use it to prove that errors surface with the file, offset, layer
// and expert, that retries recover transient faults, and that corrupt data is never used.
//
// Thread-safety: on_read is called from the reader's I/O thread; ScriptedFaults locks.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>

#include "cache/expert_id.h"

namespace cs {

struct ReadEvent {
  ExpertId id;
  uint64_t offset = 0;  // file offset of this read
  uint32_t length = 0;  // bytes asked for
  void* buffer = nullptr;
  int attempt = 0;        // 0 for the first try of this blob read
  bool prefetch = false;  // the read serves a prefetch
};

class ReadFaultInjector {
 public:
  virtual ~ReadFaultInjector() = default;
  // `result` is the byte count (or -errno) the kernel returned; the injector may change it and
  // the bytes in ev.buffer.
  virtual void on_read(const ReadEvent& ev, int& result) = 0;
};

enum class FaultKind : uint8_t {
  kError,    // the read fails with EIO
  kShort,    // the read returns half the bytes
  kCorrupt,  // one byte of the data flips (the checksum must catch it)
  kDelay,    // the read takes `delay` longer
};

// Faults by expert: each rule fires on the first `times` reads of that expert that it sees
// (times < 0: always), so "fails twice then succeeds" tests retries and "always" tests the
// final error.
class ScriptedFaults final : public ReadFaultInjector {
 public:
  void add(ExpertId id, FaultKind kind, int times,
           std::chrono::microseconds delay = std::chrono::microseconds(0),
           bool prefetch_only = false);
  void on_read(const ReadEvent& ev, int& result) override;
  int fired(ExpertId id) const;  // how many times rules of `id` fired

 private:
  struct Rule {
    FaultKind kind;
    int times;
    std::chrono::microseconds delay;
    bool prefetch_only = false;
    int fired = 0;
  };
  mutable std::mutex mu_;
  std::multimap<ExpertId, Rule> rules_;  // GUARDED_BY(mu_)
};

}  // namespace cs
