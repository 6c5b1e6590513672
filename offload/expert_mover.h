// Carries out the transfer part of layer plans (cache/plan.h): NVMe reads into host slots,
// host-to-GPU copies into GPU slots, and the bookkeeping the plan cannot know in advance
// (which prefetches arrived or failed). The compute part (tables, kernels) is the executor's.
//
// Order of events for one copy: [NVMe read -> verified] -> copy enqueued -> landed. A copy whose
// read is still in flight is deferred and enqueued when the read lands (progress(), or a wait).
// A demand transfer that fails (the reader already retried) leaves the caches without that
// expert and throws cs::Error naming the file, offset, layer and expert: failed bytes are never
// used. A failed prefetch is dropped and counted; the expert is simply a miss later.
//
// Thread-safety: one thread (the executor).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "cache/plan.h"
#include "cache/slot_cache.h"
#include "offload/copy_engine.h"
#include "offload/host_tier.h"

namespace cs {

struct MoverStats {
  uint64_t bytes_host_to_gpu = 0, bytes_nvme_to_host = 0;
  uint64_t copies = 0, reads = 0;
  uint64_t prefetch_failures = 0;
  double stall_seconds = 0;  // time spent blocked in finish_pass() and drain()
  std::string last_prefetch_error;
};

class ExpertMover {
 public:
  // gpu_slots: slot s starts at gpu_slots + s * host.slot_bytes() (backend memory).
  ExpertMover(HostTier& host, SlotCache& gpu, CopyEngine& copies, uint8_t* gpu_slots);

  uint8_t* gpu_slot(int slot) const { return gpu_slots_ + uint64_t(slot) * slot_bytes_; }
  // Issues the pass's reads and the copies whose bytes are in RAM.
  void start_pass(const PlanPass& pass);
  // Blocks until the pass's demand copies, waits and CPU experts' host copies have landed.
  // Throws cs::Error (kIo, kBadFile) when one cannot be read.
  void finish_pass(const PlanPass& pass);
  // Without blocking where compute is asynchronous: makes compute enqueued from now on start
  // after the pass's demand copies and waits have landed, so their kernel can be queued before
  // the host turns to other work. False (nothing ordered) when one of them still waits for its
  // NVMe read or failed: then finish_pass() is the way. finish_pass() still follows, for the
  // bookkeeping and the errors.
  bool order_pass(const PlanPass& pass);
  // Blocks until the host copies of the pass's CPU experts are in RAM (their NVMe reads landed
  // and verified), so the CPU can compute them while the GPU copies are still under way.
  void finish_cpu_reads(const PlanPass& pass);
  // Whether finish_cpu_reads() would wait: a CPU expert's NVMe read is in flight or failed.
  bool cpu_reads_pending(const PlanPass& pass) const;
  void start_prefetches(const std::vector<PlanCopy>& prefetches);
  // The host copy of an expert of a plan (from the plan's host slot, or the fixed place).
  const uint8_t* host_src(ExpertId id, const HostFetch& f) const;
  // After a failure in pass `failed_pass` of `plan`: waits for what is in flight, then removes
  // from both caches every expert that may not have landed (demand transfers of the failed pass
  // and later ones, anything still loading), so nothing unwritten or unverified is used later.
  void rollback(const LayerPlan& plan, size_t failed_pass);
  // Non-blocking: reports arrived reads and copies to the caches, enqueues deferred copies.
  void progress();
  // Blocks until nothing is in flight.
  void drain();
  bool idle() const { return reads_.empty() && copies_.empty(); }
  // Copies enqueued or waiting for their reads that have not been reported landed.
  int copies_in_flight() const { return int(copies_.size()); }

  const MoverStats& stats() const { return stats_; }
  MoverStats& stats() { return stats_; }

 private:
  struct Read {
    uint64_t ticket = 0;
    bool prefetch = false;
    bool waited = false;  // a pass waits for this prefetch: if it fails, read again on demand
    BlobRead request;
  };
  struct Copy {
    uint64_t ticket = 0;  // 0: waiting for its read
    const uint8_t* src = nullptr;
    int slot = -1;
    bool prefetch = false;
    bool host_pinned = false;
  };
  void start_read(ExpertId id, const HostFetch& f, bool prefetch);
  void start_copy(ExpertId id, const HostFetch& f, int slot, bool prefetch);
  void issue(ExpertId id, Copy& c);
  void on_read(ExpertId id, const ReadOutcome& o);
  void on_copied(ExpertId id, const Copy& c);
  void settle_read(ExpertId id);  // blocks; throws on a failed demand read
  [[noreturn]] void fail_demand(ExpertId id, std::string error, bool corrupt);

  HostTier& host_;
  SlotCache& gpu_;
  CopyEngine& copies_engine_;
  uint8_t* gpu_slots_;
  uint64_t slot_bytes_;
  std::map<ExpertId, Read> reads_;
  std::map<ExpertId, Copy> copies_;
  struct Failure {
    std::string error;
    bool corrupt = false;
  };
  std::map<ExpertId, Failure> failed_;  // demand reads that failed, not yet thrown
  MoverStats stats_;
};

}  // namespace cs
