#include "offload/expert_mover.h"

#include <algorithm>
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
  if (!reader)
    fail(ErrorKind::kInternal, "expert mover: a read of {} without a file", to_string(id));
  const ExpertBlobLocation& b = host_.locator().at(id.layer, id.expert);
  Read r;
  r.request = {id, b.offset, b.bytes, b.xxh3, host_.slot_ptr(f.host_slot), prefetch};
  r.prefetch = prefetch;
  r.ticket = reader->submit(r.request);
  reads_[id] = r;
  ++stats_.reads;
}

const uint8_t* ExpertMover::host_src(ExpertId id, const HostFetch& f) const {
  const uint8_t* src = f.host_slot >= 0 ? host_.slot_ptr(f.host_slot) : host_.blob(id);
  if (!src) fail(ErrorKind::kInternal, "expert mover: {} is not in host RAM", to_string(id));
  return src;
}

void ExpertMover::start_copy(ExpertId id, const HostFetch& f, int slot, bool prefetch) {
  Copy& c = copies_[id];
  c = Copy{0, host_src(id, f), slot, prefetch, host_.cache() != nullptr};
  if (!reads_.count(id)) issue(id, c);
}

void ExpertMover::issue(ExpertId id, Copy& c) {
  const uint64_t bytes = host_.locator().at(id.layer, id.expert).bytes;
  c.ticket = copies_engine_.copy(gpu_slot(c.slot), c.src, bytes);
  stats_.bytes_host_to_gpu += bytes;
  ++stats_.copies;
}

void ExpertMover::start_pass(const PlanPass& pass) {
  for (const PlanCopy& c : pass.demand) start_read(c.id, c.host, false);
  for (const PlanCpu& c : pass.cpu) start_read(c.id, c.host, false);
  for (const PlanCopy& c : pass.demand) start_copy(c.id, c.host, c.slot, false);
}

void ExpertMover::start_prefetches(const std::vector<PlanCopy>& prefetches) {
  for (const PlanCopy& c : prefetches) {
    start_read(c.id, c.host, true);
    if (c.slot >= 0) start_copy(c.id, c.host, c.slot, true);
  }
}

void ExpertMover::on_read(ExpertId id, const ReadOutcome& o) {
  Read rd = reads_.at(id);
  reads_.erase(id);
  const bool prefetch = rd.prefetch;
  SlotCache* hc = host_.cache();
  if (o.ok) {
    stats_.bytes_nvme_to_host += host_.locator().at(id.layer, id.expert).bytes;
    if (hc && hc->loading(id)) hc->loaded(id);  // demand reads are recorded loaded already
    return;
  }
  const auto copy = copies_.find(id);
  // A prefetch copy that is no longer "loading" in the GPU cache was claimed by a plan's wait.
  const bool claimed = copy != copies_.end() && (!copy->second.prefetch || !gpu_.loading(id));
  if (prefetch && (rd.waited || claimed)) {
    // A pass needs this expert now: drop the failed prefetch read and read it again on demand.
    ++stats_.prefetch_failures;
    stats_.last_prefetch_error = o.error;
    rd.prefetch = rd.request.prefetch = false;
    rd.ticket = host_.reader()->submit(rd.request);
    ++stats_.reads;
    reads_[id] = rd;
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
  if (!c.prefetch) return;  // the planner releases the host pins of demand copies
  if (gpu_.loading(id)) gpu_.loaded(id);
  SlotCache* hc = host_.cache();
  if (c.host_pinned && hc && hc->find(id) >= 0 && hc->slot(hc->find(id)).pins > 0) hc->unpin(id);
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

void ExpertMover::fail_demand(ExpertId id, std::string error, bool corrupt) {
  failed_.erase(id);
  copies_.erase(id);
  fail(corrupt ? ErrorKind::kBadFile : ErrorKind::kIo, "{}", error);
}

void ExpertMover::rollback(const LayerPlan& plan, size_t failed_pass) {
  try {
    drain();
  } catch (...) {
  }
  // Nothing is in flight now: an expert still "loading" never will arrive (a prefetch that was
  // planned but not started, or whose read failed while a pass waited for it).
  SlotCache* hc = host_.cache();
  for (ExpertId id : gpu_.loading_experts()) gpu_.drop(id);
  if (hc)
    for (ExpertId id : hc->loading_experts()) hc->drop(id);
  // Demand transfers are recorded as done when planned: drop those of the failed pass and after.
  auto drop = [&](ExpertId id, int gpu_slot, const HostFetch& h) {
    if (gpu_slot >= 0 && gpu_.find(id) == gpu_slot) gpu_.drop(id);
    if (hc && h.read && hc->find(id) == h.host_slot) hc->drop(id);
  };
  // So are the prefetches those passes wait for.
  for (size_t p = failed_pass; p < plan.passes.size(); ++p) {
    for (const PlanHit& h : plan.passes[p].waits) drop(h.id, h.slot, {});
    for (const PlanCopy& c : plan.passes[p].demand) drop(c.id, c.slot, c.host);
    for (const PlanCpu& c : plan.passes[p].cpu) drop(c.id, -1, c.host);
  }
  gpu_.unpin_all();
}

void ExpertMover::settle_read(ExpertId id) {
  // Whoever reads the host copy waits for it now: a failed prefetch read is read again.
  if (auto r = reads_.find(id); r != reads_.end()) r->second.waited = true;
  while (reads_.count(id)) on_read(id, host_.reader()->wait(reads_.at(id).ticket));
  if (auto f = failed_.find(id); f != failed_.end())
    fail_demand(id, f->second.error, f->second.corrupt);  // copies the message before erasing it
  auto c = copies_.find(id);
  if (c != copies_.end() && c->second.ticket == 0) issue(id, c->second);
}

void ExpertMover::finish_pass(const PlanPass& pass) {
  StallTimer timer(stats_.stall_seconds);
  for (const PlanCopy& c : pass.demand) settle_read(c.id);
  for (const PlanHit& h : pass.waits) {
    if (reads_.count(h.id) || copies_.count(h.id)) {
      settle_read(h.id);  // if the prefetch's read fails, it is read again on demand
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

bool ExpertMover::order_pass(const PlanPass& pass) {
  uint64_t last = 0;
  auto need = [&](ExpertId id, bool wait) {
    if (reads_.count(id) || failed_.count(id)) return false;
    const auto it = copies_.find(id);
    // Landed and reported already (a demand copy is resident from its plan on).
    if (it == copies_.end()) return !wait || gpu_.resident(id);
    if (it->second.ticket == 0) return false;
    last = std::max(last, it->second.ticket);
    return true;
  };
  for (const PlanCopy& c : pass.demand)
    if (!need(c.id, false)) return false;
  for (const PlanHit& h : pass.waits)
    if (!need(h.id, true)) return false;
  if (last > 0) copies_engine_.order_compute(last);
  return true;
}

void ExpertMover::finish_cpu_reads(const PlanPass& pass) {
  StallTimer timer(stats_.stall_seconds);
  for (const PlanCpu& c : pass.cpu) settle_read(c.id);
}

bool ExpertMover::cpu_reads_pending(const PlanPass& pass) const {
  for (const PlanCpu& c : pass.cpu)
    if (reads_.count(c.id) || failed_.count(c.id)) return true;
  return false;
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
