// OffloadMoeExecutor: the per-layer work (routing to the host, prediction, plan, transfers,
// compute). Construction and memory planning are in offload_executor_setup.cpp.
#include "runtime/engine/offload_moe_executor.h"

#include <algorithm>
#include <chrono>

#include "cache/hybrid_chooser.h"
#include "cache/planner.h"
#include "cache/prediction_scorer.h"
#include "common/error.h"
#include "offload/copy_engine.h"
#include "offload/expert_mover.h"
#include "offload/host_tier.h"

namespace cs {
namespace {
constexpr int kTables = 8;  // as in offload_executor_setup.cpp
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
}  // namespace

void OffloadMoeExecutor::fence() {
  // Copies about to overwrite slots must wait for the kernels still reading them.
  if (backend_.host_memory() || opt_.compute_stream)
    copies_->fence_compute();
  else
    backend_.synchronize();
}

void OffloadMoeExecutor::begin_step(int T) {
  telemetry_.current().seconds = step_seconds_;
  telemetry_.end_step();
  step_seconds_ = 0;
  predictor_->end_step();
  scorer_->end_step();
  planner_->begin_step(step_);
  telemetry_.begin_step(step_, T);
  ++step_;
  check_pinning();
}

void OffloadMoeExecutor::forward(int layer, const float* x, int T, const int32_t* ids,
                                 const float* weights, float* out) {
  prepare();
  const auto t0 = std::chrono::steady_clock::now();
  if (layer == first_moe_ || !telemetry_.in_step()) begin_step(T);
  if (T > max_T_) {          // a larger batch than device.max_batch: grow the per-token workspaces
    backend_.synchronize();  // queued uploads may still read the staging block freed here
    max_T_ = T;
    if (lookahead_logits_.get())
      lookahead_logits_ =
          backend_.alloc(size_t(T) * size_t(predictor_->lookahead()) * size_t(E_) * 4);
    if (cpu_out_.get()) cpu_out_ = backend_.alloc(size_t(T) * size_t(H_) * 4);
    reserve_staging(T);
  }
  StepTelemetry& st = telemetry_.current();
  const MoverStats before = mover_->stats();
  const uint64_t gpu_evictions = gpu_cache_->evictions();
  const uint64_t host_evictions = host_->cache() ? host_->cache()->evictions() : 0;
  mover_->progress();

  // Predictions for the next layers (gate lookahead: one product of the stacked routers),
  // launched first so that one synchronization brings routing, logits and hidden state down.
  const int pos =
      int(std::find(moe_layers_.begin(), moe_layers_.end(), layer) - moe_layers_.begin());
  const int ahead = std::min(predictor_->lookahead(), int(moe_layers_.size()) - 1 - pos);
  if (ahead > 0) {
    MatView v = routers_view_;
    const int64_t row0 = int64_t(pos + 1) * E_;
    v.rows = int64_t(ahead) * E_;
    v.data = static_cast<const uint8_t*>(routers_view_.data) + dtype_data_bytes(v.dtype, row0, H_);
    const size_t sc = v.group > 0 ? size_t(row0) * size_t(H_ / v.group) : 0;
    if (v.scales) v.scales += sc;
    if (v.mins) v.mins += sc;
    backend_.matmul(x, T, v, lookahead_logits_.as<float>());
  }

  // Routing to the host: the ids and weights of T tokens, the lookahead logits and, when the CPU
  // may compute experts, a decode-sized hidden state: queued together, one synchronization.
  const size_t n = size_t(T) * size_t(K_);
  backend_.download_async(staging_.ids, ids, n * 4);
  backend_.download_async(staging_.w, weights, n * 4);
  host_x_layer_ = -1;
  if (cpu_out_.get() && size_t(T) * size_t(H_) <= staging_.x_floats) {
    backend_.download_async(staging_.x, x, size_t(T) * size_t(H_) * 4);
    host_x_layer_ = layer;
  }
  if (ahead > 0)
    backend_.download_async(staging_.logits, lookahead_logits_.get(),
                            size_t(T) * size_t(ahead) * size_t(E_) * 4);
  const auto wait0 = Clock::now();
  backend_.synchronize();
  const auto planned0 = Clock::now();
  st.routing_wait_seconds += std::chrono::duration<double>(planned0 - wait0).count();
  table_next_ = 0;  // the stream has drained: every table is free
  settle_timing();  // ... and the previous pass's marks are complete
  const LayerRouting routing{layer, T, K_, staging_.ids, staging_.w};
  predictor_->on_routing(routing);
  if (ahead > 0) predictor_->on_lookahead(layer, ahead, T, staging_.logits);
  const Prediction prediction = predictor_->predict(layer);

  mover_->progress();  // copies that landed during the downloads are not a backlog
  plan_backlog_ = mover_->copies_in_flight();
  if (hybrid_) hybrid_->set_copy_backlog(plan_backlog_);
  LayerPlan plan = planner_->plan(routing, prediction);
  std::vector<ExpertId> routed;
  for (const RoutedExpert& r : plan.routed) routed.push_back(r.id);
  st.prediction += scorer_->actual(layer, routed);
  scorer_->predicted(prediction);
  if (plan.drain) {
    ++st.drains;
    mover_->drain();
    plan = planner_->plan(routing, prediction);
    if (plan.drain)
      fail(ErrorKind::kInternal, "offload: layer {} still blocked after a drain", layer);
  }

  st.passes += plan.passes.size();
  st.prefetches += plan.prefetches.size();
  for (const PlanPass& p : plan.passes) {
    if (hybrid_) st.predicted_seconds += hybrid_->scaled_model().pass_seconds(pass_load(p)).total;
    st.hits += p.hits.size();
    for (const PlanHit& h : p.hits) st.prefetch_hits += h.prefetched;
    st.waits += p.waits.size();
    st.demand += p.demand.size();
    st.cpu += p.cpu.size();
    st.expert_uses += p.hits.size() + p.waits.size() + p.demand.size() + p.cpu.size();
  }

  st.plan_seconds += since(planned0);  // the first pass's copies are enqueued in run_pass
  const bool one_pass = plan.passes.size() == 1;
  size_t i = 0;
  try {
    for (; i < plan.passes.size(); ++i) {
      const PlanPass& pass = plan.passes[i];
      if (i > 0) fence();
      mover_->start_pass(pass);
      if (one_pass) mover_->start_prefetches(plan.prefetches);  // never the only pass's slots
      run_pass(pass, int(i), x, ids, weights, out);
    }
    if (!one_pass) {
      fence();
      mover_->start_prefetches(plan.prefetches);
    }
  } catch (...) {
    // A read failed (or a kernel threw): forget whatever this plan recorded but did not land.
    backend_.synchronize();
    mover_->rollback(plan, std::min(i, plan.passes.size() - 1));
    throw;
  }

  const MoverStats& after = mover_->stats();
  st.bytes_host_to_gpu += after.bytes_host_to_gpu - before.bytes_host_to_gpu;
  st.bytes_nvme_to_host += after.bytes_nvme_to_host - before.bytes_nvme_to_host;
  st.stall_seconds += after.stall_seconds - before.stall_seconds;
  st.gpu_evictions += gpu_cache_->evictions() - gpu_evictions;
  st.host_evictions += (host_->cache() ? host_->cache()->evictions() : 0) - host_evictions;
  *last_plan_ = std::move(plan);
  if (plan_observer_) plan_observer_(*last_plan_);
  step_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Buffer& OffloadMoeExecutor::next_table() {
  if (table_next_ == kTables) {  // the ring wrapped: the kernels reading it must be done
    backend_.synchronize();
    table_next_ = 0;
  }
  return tables_[size_t(table_next_++)];
}

// One GPU MoE launch over the pass's resident experts (`hits`) and/or the experts that arrive by
// copy (`copied`: waits and demand); every other expert is absent from its table. The table is
// written into the page-locked ring beside the device's (same index), so its upload is an
// asynchronous copy; both rings are reused only after the stream has drained.
void OffloadMoeExecutor::launch_gpu(const PlanPass& pass, bool hits, bool copied,
                                    const MoeArgs& args, bool accumulate) {
  Buffer& table = next_table();
  ExpertWeights* host = staging_.tables + size_t(table_next_ - 1) * size_t(E_);
  std::fill(host, host + E_, ExpertWeights{});
  auto put = [&](ExpertId id, int slot) {
    host[size_t(id.expert)] =
        expert_views(locator_->at(id.layer, id.expert).layout, mover_->gpu_slot(slot));
  };
  if (hits)
    for (const PlanHit& h : pass.hits) put(h.id, h.slot);
  if (copied) {
    for (const PlanHit& h : pass.waits) put(h.id, h.slot);
    for (const PlanCopy& c : pass.demand) put(c.id, c.slot);
  }
  backend_.upload(table.get(), host, size_t(E_) * sizeof(ExpertWeights));
  MoeArgs a = args;
  a.table = table.as<const ExpertWeights>();
  a.accumulate = accumulate;
  backend_.moe(a);
}

void OffloadMoeExecutor::run_pass(const PlanPass& pass, int pass_no, const float* x,
                                  const int32_t* ids, const float* weights, float* out) {
  const auto started = Clock::now();  // the pass's copies were enqueued just before
  const size_t t0 = size_t(pass.t_begin);
  MoeArgs a;
  a.x = x + t0 * size_t(H_);
  a.T = pass.t_end - pass.t_begin;
  a.hidden = H_;
  a.ids = ids + t0 * size_t(K_);
  a.weights = weights + t0 * size_t(K_);
  a.k = K_;
  a.n_experts = E_;
  a.dtype = expert_dtype_;
  a.inter = expert_inter_;
  a.out = out + t0 * size_t(H_);
  if (pass.cpu.empty()) {  // one kernel over every expert, in router order (bit-identical)
    mover_->finish_pass(pass);
    launch_gpu(pass, true, true, a, false);
    return;
  }
  // The previous pass's CPU results may still be uploading from the staging block this pass's
  // CPU experts write into.
  if (pass_no > 0) {
    backend_.synchronize();
    settle_timing();  // the previous pass's copy channel, before this pass marks its own
  }
  // Both channels at once: the hits on the GPU and the CPU experts while the copies land.
  const bool early = !pass.hits.empty();
  const bool copied = !pass.waits.empty() || !pass.demand.empty();
  const uint64_t from = copied ? backend_.mark() : 0;  // the copy channel's start
  const CpuPass cpu = run_cpu(pass, a, copied);  // hidden state down, GPU kernels, CPU experts
  const double cpu_seconds = since(started);
  const auto wait0 = Clock::now();
  mover_->finish_pass(pass);
  const double copy_seconds = since(started);
  // The copies' finish time is known only when this wait really blocked; otherwise they had
  // landed during the CPU work and copy_seconds is an upper bound.
  const bool copy_exact = since(wait0) > 50e-6;
  uint64_t to = cpu.copied_mark;  // the copy channel's end
  if (!cpu.copied_queued && (copied || !early)) {
    launch_gpu(pass, false, true, a, early);
    if (copied) to = backend_.mark();
  }
  const size_t n = size_t(a.T) * size_t(H_);
  backend_.upload(cpu_out_.get(), cpu.out, n * 4);
  backend_.add(a.out, cpu_out_.as<float>(), int64_t(n));

  StepTelemetry& st = telemetry_.current();
  st.cpu_seconds += cpu_seconds;
  if (from && to) timing_ = {from, to};
  if (hybrid_ && opt_.config.offload.adapt > 0) {
    const CostModel m = hybrid_->scaled_model();
    PassLoad l = pass_load(pass);
    const int queued = std::max(l.in_flight, plan_backlog_);  // copies ahead of this pass's
    const double pred_cpu = m.pass_seconds(l).cpu_channel;
    if (opt_.config.offload.device_timing && timing_.from) {
      // Copies and the copied experts' kernel against their time on the device, next sync.
      l.in_flight = queued;
      timing_.observe = true;
      timing_.predicted_copy = m.pass_seconds(l).copy_channel;
      timing_.predicted_cpu = pred_cpu;
      timing_.cpu_seconds = cpu_seconds;
      return;
    }
    const double pred_copy = double(queued + int(l.stream_tokens.size())) * m.copy_seconds() +
                             l.nvme_stream * m.nvme_seconds();
    hybrid_->observe(pred_copy, copied ? copy_seconds : 0.0, !copy_exact, pred_cpu, cpu_seconds);
  }
}

void OffloadMoeExecutor::settle_timing() {
  if (timing_.from == 0) return;
  const double s = backend_.mark_seconds(timing_.from, timing_.to);
  if (s >= 0) {
    if (telemetry_.in_step()) telemetry_.current().copy_channel_seconds += s;
    if (timing_.observe && hybrid_)
      hybrid_->observe(timing_.predicted_copy, s, false, timing_.predicted_cpu,
                       timing_.cpu_seconds);
  }
  timing_ = {};
}

// The CPU path: hidden states down; the GPU kernel over the hits launched (it runs while the CPU
// works) and, where compute is asynchronous and the copies are all issued, the kernel over the
// copied experts queued behind their copies, so the GPU does not wait for the CPU to start it;
// then the CPU experts computed from their host copies. On a GPU, when the CPU experts are all in
// RAM, the GPU launches are made while the CPU's workers already compute (Backend::moe_while), so
// the CPU channel does not start behind them; an expert still on its way from NVMe is waited for
// after the launches instead. Returns the CPU's partial sums (page-locked staging for
// decode-sized passes) and whether the copied experts were queued.
OffloadMoeExecutor::CpuPass OffloadMoeExecutor::run_cpu(const PlanPass& pass, const MoeArgs& gpu,
                                                        bool copied) {
  const int T = pass.t_end - pass.t_begin;
  const size_t n = size_t(T) * size_t(H_);
  CpuPass r{staging_.out, false, 0};
  if (n > staging_.x_floats) {
    host_cpu_out_.resize(n);
    r.out = host_cpu_out_.data();
  }
  const float* hx = staging_.x + size_t(pass.t_begin) * size_t(H_);
  if (host_x_layer_ < 0) {  // not brought down with the routing (a large batch)
    host_x_.resize(n);
    backend_.download(host_x_.data(), gpu.x, n * 4);
    hx = host_x_.data();
  }
  const bool early = !pass.hits.empty();
  const bool async_compute = !backend_.host_memory() && opt_.compute_stream;
  const std::function<void()> launch = [&] {
    if (early) launch_gpu(pass, true, false, gpu, false);
    if (copied && async_compute && mover_->order_pass(pass)) {
      launch_gpu(pass, false, true, gpu, early);
      r.copied_queued = true;
      r.copied_mark = backend_.mark();
    }
  };
  // A host backend computes the "launches" itself: overlapped, two thread pools would compete.
  const bool overlap = !backend_.host_memory() && !mover_->cpu_reads_pending(pass);
  if (!overlap) launch();
  mover_->finish_cpu_reads(pass);
  std::fill(table_.begin(), table_.end(), ExpertWeights{});
  for (const PlanCpu& c : pass.cpu)
    table_[size_t(c.id.expert)] =
        expert_views(locator_->at(c.id.layer, c.id.expert).layout, mover_->host_src(c.id, c.host));
  MoeArgs a = gpu;  // the same pass, from host memory
  a.x = hx;
  a.ids = staging_.ids + size_t(pass.t_begin) * size_t(K_);
  a.weights = staging_.w + size_t(pass.t_begin) * size_t(K_);
  a.table = table_.data();
  a.out = r.out;
  a.accumulate = false;
  if (overlap)
    cpu_backend_->moe_while(a, launch);
  else
    cpu_backend_->moe(a);
  return r;
}

const OffloadTelemetry& OffloadMoeExecutor::telemetry() {
  if (telemetry_.in_step()) {
    telemetry_.current().seconds = step_seconds_;
    step_seconds_ = 0;
    telemetry_.end_step();
  }
  OffloadTelemetry& d = telemetry_.data();
  d.per_layer = scorer_->per_layer();
  if (mover_) {
    d.prefetch_failures = mover_->stats().prefetch_failures;
    d.last_error = mover_->stats().last_prefetch_error;
  }
  if (NvmeReader* r = host_->reader()) {
    d.read_retries = r->stats().retries;
    d.checksum_failures = r->stats().checksum_failures;
  }
  return d;
}

void OffloadMoeExecutor::reset_telemetry() {
  timing_ = {};  // a pass of the runs before: not this run's
  telemetry();
  telemetry_.reset();
  scorer_->reset();
}

}  // namespace cs
