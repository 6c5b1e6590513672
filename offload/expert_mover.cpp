#include "offload/expert_mover.h"

#include <chrono>

#include "common/error.h"

namespace cs {
namespace {

class StallTimer {
 public:
  explicit StallTimer(double& sink) : sink_(sink), t0_(std::chrono::steady_clock::now()) {}
  ~StallTimer() {
    sink_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

 private:
  double& sink_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace

ExpertMover::ExpertMover(HostTier& host, SlotCache& gpu, CopyEngine& copies, uint8_t* gpu_slots)
    : host_(host),
      gpu_(gpu),
      copies_engine_(copies),
      gpu_slots_(gpu_slots),
      slot_bytes_(host.slot_bytes()) {}

void ExpertMover::start_read(ExpertId id, const HostFetch& f, bool prefetch) {
  if (!f.needed()) return;
  NvmeReader* reader = host_.reader();
  if (!reader) fail(ErrorKind::kInternal, "expert mover: a read of {} without a file", to_string(id));
  const ExpertBlobLocation& b = host_.locator().at(id.layer, id.expert);
  reads_[id] = {reader->submit({id, b.offset, b.bytes, b.xxh3, host_.slot_ptr(f.host_slot)}),
                prefetch};
  ++stats_.reads;
}

void ExpertMover::start_copy(ExpertId id, int slot, bool prefetch) {
  Copy& c = copies_[id];
  c = Copy{0, slot, prefetch, host_.cache() != nullptr};
  if (!reads_.count(id)) issue(id, c);
}

void ExpertMover::issue(ExpertId id, Copy& c) {
  const uint8_t* src = host_.blob(id);
  if (!src) fail(ErrorKind::kInternal, "expert mover: {} is not in host RAM", to_string(id));
  const uint64_t bytes = host_.locator().at(id.layer, id.expert).bytes;
  c.ticket = copies_engine_.copy(gpu_slot(c.slot), src, bytes);
  stats_.bytes_host_to_gpu += bytes;
  ++stats_.copies;
}

void ExpertMover::start_pass(const PlanPass& pass) {
  for (const PlanCopy& c : pass.demand) start_read(c.id, c.host, false);
  for (const PlanCpu& c : pass.cpu) start_read(c.id, c.host, false);
  for (const PlanCopy& c : pass.demand) start_copy(c.id, c.slot, false);
}

void ExpertMover::start_prefetches(const std::vector<PlanCopy>& prefetches) {
  for (const PlanCopy& c : prefetches) {
    start_read(c.id, c.host, true);
    if (c.slot >= 0) start_copy(c.id, c.slot, true);
  }
}

void ExpertMover::on_read(ExpertId id, const ReadOutcome& o) {
  const bool prefetch = reads_.at(id).prefetch;
  reads_.erase(id);
  SlotCache* hc = host_.cache();
  if (o.ok) {
    stats_.bytes_nvme_to_host += host_.locator().at(id.layer, id.expert).bytes;
    if (hc && hc->loading(id)) hc->loaded(id);  // demand reads are recorded loaded already
    return;
  }
  if (!prefetch) {
    failed_[id] = {o.error, o.corrupt};
    return;
  }
  // A failed prefetch: forget the expert in both caches; it will be a miss later.
  ++stats_.prefetch_failures;
  stats_.last_prefetch_error = o.error;
  if (hc && hc->loading(id)) hc->abort(id);
  auto it = copies_.find(id);
  if (it != copies_.end()) {
    if (gpu_.loading(id)) gpu_.abort(id);
    copies_.erase(it);
  }
}

void ExpertMover::on_copied(ExpertId id, const Copy& c) {
  if (c.prefetch && gpu_.loading(id)) gpu_.loaded(id);
  if (c.host_pinned && host_.cache() && host_.cache()->find(id) >= 0) host_.cache()->unpin(id);
}

void ExpertMover::progress() {
  if (NvmeReader* reader = host_.reader()) {
    for (auto it = reads_.begin(); it != reads_.end();) {
      const ExpertId id = it->first;
      auto o = reader->try_take(it->second.ticket);
      ++it;
      if (o) on_read(id, *o);
    }
  }
  for (auto it = copies_.begin(); it != copies_.end();) {
    Copy& c = it->second;
    if (c.ticket == 0 && !reads_.count(it->first) && !failed_.count(it->first)) issue(it->first, c);
    if (c.ticket != 0 && copies_engine_.done(c.ticket)) {
      on_copied(it->first, c);
      it = copies_.erase(it);
    } else {
      ++it;
    }
  }
}

void ExpertMover::fail_demand(ExpertId id, const std::string& error, bool corrupt) {
  failed_.erase(id);
  copies_.erase(id);
  if (gpu_.find(id) >= 0) {
    gpu_.unpin_all();
    if (gpu_.loading(id))
      gpu_.abort(id);
    else
      gpu_.erase(id);
  }
  if (SlotCache* hc = host_.cache(); hc && hc->find(id) >= 0) {
    if (hc->loading(id)) {
      hc->abort(id);
    } else {
      while (hc->slot(hc->find(id)).pins > 0) hc->unpin(id);
      hc->erase(id);
    }
  }
  fail(corrupt ? ErrorKind::kBadFile : ErrorKind::kIo, "{}", error);
}

void ExpertMover::settle_read(ExpertId id) {
  if (auto it = reads_.find(id); it != reads_.end()) on_read(id, host_.reader()->wait(it->second.ticket));
  if (auto f = failed_.find(id); f != failed_.end()) fail_demand(id, f->second.error, f->second.corrupt);
  auto c = copies_.find(id);
  if (c != copies_.end() && c->second.ticket == 0) issue(id, c->second);
}

void ExpertMover::finish_pass(const PlanPass& pass) {
  StallTimer timer(stats_.stall_seconds);
  for (const PlanCopy& c : pass.demand) settle_read(c.id);
  for (const PlanHit& h : pass.waits) {
    if (reads_.count(h.id) || copies_.count(h.id)) {
      // The prefetch this pass waits for: once we wait, its failure is a demand failure.
      if (auto r = reads_.find(h.id); r != reads_.end()) r->second.prefetch = false;
      settle_read(h.id);
    } else if (!gpu_.resident(h.id) && !gpu_.loading(h.id)) {
      fail(ErrorKind::kInternal, "expert mover: waited-for {} is not arriving", to_string(h.id));
    }
  }
  for (const PlanCpu& c : pass.cpu) settle_read(c.id);
  auto land = [&](ExpertId id, bool prefetch_wait) {
    auto it = copies_.find(id);
    if (it == copies_.end()) {
      if (prefetch_wait && gpu_.loading(id)) gpu_.loaded(id);
      return;
    }
    copies_engine_.wait(it->second.ticket);
    on_copied(id, it->second);
    if (prefetch_wait && gpu_.loading(id)) gpu_.loaded(id);
    copies_.erase(it);
  };
  for (const PlanCopy& c : pass.demand) land(c.id, false);
  for (const PlanHit& h : pass.waits) land(h.id, true);
}

void ExpertMover::release_cpu(const PlanPass& pass) {
  SlotCache* hc = host_.cache();
  if (!hc) return;
  for (const PlanCpu& c : pass.cpu)
    if (hc->find(c.id) >= 0) hc->unpin(c.id);
}

void ExpertMover::drain() {
  StallTimer timer(stats_.stall_seconds);
  if (NvmeReader* reader = host_.reader())
    while (!reads_.empty()) {
      const auto it = reads_.begin();
      const ExpertId id = it->first;
      on_read(id, reader->wait(it->second.ticket));
    }
  for (auto& [id, c] : copies_) {
    if (c.ticket == 0 && !failed_.count(id)) issue(id, c);
    if (c.ticket == 0) continue;
    copies_engine_.wait(c.ticket);
    on_copied(id, c);
  }
  copies_.clear();
  // A demand read that failed with nobody waiting for it (an exception unwound the layer).
  failed_.clear();
}

}  // namespace cs
