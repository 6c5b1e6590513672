#include "cache/trace_replay.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>

#include "cache/hybrid_chooser.h"
#include "cache/planner.h"
#include "common/error.h"

namespace cs {
namespace {

std::shared_ptr<FutureTrace> future_of(const RoutingTrace& t) {
  const TraceHeader& h = t.header;
  auto f = std::make_shared<FutureTrace>(h.n_layers, h.n_experts);
  // Ticks must be added in increasing order per expert: walk steps, then layers.
  std::vector<uint8_t> seen(size_t(h.n_experts));
  for (size_t s = 0; s < t.steps.size(); ++s)
    for (const TraceLayer& l : t.steps[s].layers) {
      std::fill(seen.begin(), seen.end(), 0);
      const uint64_t tick = CacheClock{s, l.layer}.tick(h.n_layers);
      for (int32_t e : l.ids)
        if (!seen[size_t(e)]) {
          seen[size_t(e)] = 1;
          f->add({l.layer, e}, tick);
        }
    }
  return f;
}

std::unique_ptr<SlotCache> make_cache(const CacheGeometry& g, PolicyKind kind, double decay,
                                      const RoutingTrace& trace) {
  if (kind != PolicyKind::kBelady) return make_slot_cache(g, kind, decay);
  PolicyParams pp;
  pp.n_layers = g.n_layers;
  pp.n_experts = g.n_experts;
  pp.n_partitions = cache_partitions(g);
  pp.decay = decay;
  return std::make_unique<SlotCache>(g, make_belady_policy(pp, future_of(trace)));
}

// What the executor's mover reports before each layer is planned, under the replay's timing
// assumption: every prefetch started so far has landed (its host read too), and the host pins
// of its copy are released.
struct InFlight {
  std::vector<PlanCopy> prefetches;
  void land(SlotCache& gpu, SlotCache* host) {
    for (const PlanCopy& c : prefetches) {
      if (host && c.host.read && host->loading(c.id)) host->loaded(c.id);
      if (c.slot >= 0 && gpu.loading(c.id)) gpu.loaded(c.id);
      if (host && c.slot >= 0 && host->find(c.id) >= 0 && host->slot(host->find(c.id)).pins > 0)
        host->unpin(c.id);
    }
    prefetches.clear();
  }
};

}  // namespace

ReplayResult replay_trace(const RoutingTrace& trace, const ReplayConfig& cfg) {
  const TraceHeader& h = trace.header;
  if (cfg.predictor == PredictorKind::kLookahead && cfg.horizon > h.lookahead)
    fail(ErrorKind::kInvalidArgument,
         "replay: lookahead horizon {} but the trace recorded router logits for {} layers ahead "
         "(record with a larger `coldstream trace --horizon`)",
         cfg.horizon, h.lookahead);
  CacheGeometry g;
  g.n_slots = cfg.gpu_slots;
  g.n_layers = h.n_layers;
  g.n_experts = h.n_experts;
  g.allocation = cfg.allocation;
  g.layers = h.moe_layers;
  g.layer_slots = cfg.layer_slots;
  auto gpu = make_cache(g, cfg.policy, cfg.decay, trace);
  std::unique_ptr<SlotCache> host;
  if (cfg.host_slots > 0) {
    CacheGeometry hg;
    hg.n_slots = cfg.host_slots;
    hg.n_layers = h.n_layers;
    hg.n_experts = h.n_experts;
    hg.layers = h.moe_layers;
    host = make_slot_cache(hg, cfg.host_policy, cfg.decay);
  }
  PredictorParams pp;
  pp.n_layers = h.n_layers;
  pp.n_experts = h.n_experts;
  pp.k = h.k;
  pp.layers = h.moe_layers;
  pp.horizon = cfg.horizon;
  pp.threshold = cfg.threshold;
  pp.top_k = cfg.top_k;
  auto predictor = make_predictor(cfg.predictor, pp);
  PredictionScorer scorer(h.n_layers, h.n_experts);
  PlannerOptions po;
  po.k = h.k;
  po.miss_path = cfg.miss_path;
  po.chooser = cfg.chooser;
  po.prefetch_share = cfg.prefetch_share;
  po.prefetch_copies = cfg.prefetch_copies;
  Planner planner(*gpu, host.get(), po);

  ReplayResult r;
  if (!cfg.hot_set.empty()) {
    const std::vector<PlanCopy> hot = planner.plan_hot_set(cfg.hot_set);
    r.hot_loaded = hot.size();
  }
  InFlight flight;
  const int E = h.n_experts;
  std::vector<float> logits;
  int carried = 0;  // prefetch copies still on the copy channel when the next layer starts
  for (size_t s = 0; s < trace.steps.size(); ++s) {
    const TraceStep& step = trace.steps[s];
    predictor->end_step();
    scorer.end_step();
    planner.begin_step(s);
    ++r.steps;
    r.tokens += uint64_t(step.T);
    const bool decode = step.T == 1;
    (decode ? r.decode_tokens : r.prefill_tokens) += uint64_t(step.T);
    double step_time = cfg.step_seconds + cfg.token_seconds * (step.T - 1);
    for (const TraceLayer& l : step.layers) {
      flight.land(*gpu, host.get());
      const uint64_t gpu_ev = gpu->evictions(), host_ev = host ? host->evictions() : 0;
      const LayerRouting routing{l.layer, step.T, h.k, l.ids.data(), l.weights.data()};
      predictor->on_routing(routing);
      const int ahead = std::min(predictor->lookahead(), l.ahead);
      if (ahead > 0) {
        lookahead_logits(l, step.T, E, ahead, logits);
        predictor->on_lookahead(l.layer, ahead, step.T, logits.data());
      }
      const Prediction prediction = predictor->predict(l.layer);
      LayerPlan plan = planner.plan(routing, prediction);
      std::vector<ExpertId> routed;
      for (const RoutedExpert& x : plan.routed) routed.push_back(x.id);
      r.prediction += scorer.actual(l.layer, routed);
      scorer.predicted(prediction);
      if (plan.drain) {
        ++r.drains;
        flight.land(*gpu, host.get());
        plan = planner.plan(routing, prediction);
        if (plan.drain)
          fail(ErrorKind::kInternal, "replay: layer {} still blocked after a drain", l.layer);
      }
      r.passes += plan.passes.size();
      r.prefetches += plan.prefetches.size();
      uint64_t copies = 0, reads = 0, cpu = 0;
      for (const PlanPass& p : plan.passes) {
        r.hits += p.hits.size();
        for (const PlanHit& x : p.hits) r.prefetch_hits += x.prefetched;
        r.waits += p.waits.size();
        r.demand += p.demand.size();
        r.cpu += p.cpu.size();
        r.expert_uses += p.hits.size() + p.waits.size() + p.demand.size() + p.cpu.size();
        copies += p.demand.size();
        cpu += p.cpu.size();
        for (const PlanCopy& c : p.demand) reads += c.host.read;
        for (const PlanCpu& c : p.cpu) reads += c.host.read;
      }
      for (const PlanCopy& c : plan.prefetches) {
        copies += c.slot >= 0;
        reads += c.host.read;
      }
      r.gpu_copies += copies;
      r.nvme_reads += reads;
      if (decode) {
        r.decode_gpu_copies += copies;
        r.decode_nvme_reads += reads;
        r.decode_cpu += cpu;
      }
      r.gpu_evictions += gpu->evictions() - gpu_ev;
      if (host) r.host_evictions += host->evictions() - host_ev;
      flight.prefetches = plan.prefetches;
      if (cfg.cost) step_time += cfg.expert_scale * plan_seconds(plan, *cfg.cost, carried);
    }
    if (cfg.cost) {
      r.seconds += step_time;
      (decode ? r.decode_seconds : r.prefill_seconds) += step_time;
    }
  }
  r.bytes_host_to_gpu = r.gpu_copies * h.expert_bytes;
  r.bytes_nvme_to_host = r.nvme_reads * h.expert_bytes;
  r.per_layer = scorer.per_layer();
  return r;
}

double plan_seconds(const LayerPlan& plan, const CostModel& cost, int& carried) {
  double t = 0;
  for (size_t i = 0; i < plan.passes.size(); ++i) {
    PassLoad load = pass_load(plan.passes[i]);
    if (i == 0) load.in_flight += carried;
    t += cost.pass_seconds(load).total;
  }
  carried = 0;
  for (const PlanCopy& c : plan.prefetches) carried += c.slot >= 0;
  return t;
}

ReplayResult replay_belady(const RoutingTrace& trace, int gpu_slots, SlotAllocation allocation) {
  ReplayConfig c;
  c.gpu_slots = gpu_slots;
  c.allocation = allocation;
  c.policy = PolicyKind::kBelady;
  c.predictor = PredictorKind::kNone;
  return replay_trace(trace, c);
}

std::vector<HotSetEntry> hot_set_from_trace(const RoutingTrace& trace, int n) {
  std::map<ExpertId, double> score;
  for (const TraceStep& s : trace.steps)
    for (const TraceLayer& l : s.layers)
      for (size_t i = 0; i < l.ids.size(); ++i) score[{l.layer, l.ids[i]}] += l.weights[i];
  std::vector<HotSetEntry> all;
  for (const auto& [id, v] : score) all.push_back({id, v});
  std::stable_sort(all.begin(), all.end(),
                   [](const HotSetEntry& a, const HotSetEntry& b) { return a.score > b.score; });
  if (int(all.size()) > n) all.resize(size_t(std::max(0, n)));
  return all;
}

std::string describe(const ReplayConfig& c) {
  std::string s = fmt::format("{} slots {}, {}", c.gpu_slots, slot_allocation_name(c.allocation),
                              policy_name(c.policy));
  if (c.predictor == PredictorKind::kNone)
    s += ", no prefetch";
  else if (c.predictor == PredictorKind::kLookahead)
    s += fmt::format(", lookahead h{} t{:g}", c.horizon, c.threshold);
  else
    s += fmt::format(", coactivation h{} t{:g}", c.horizon, c.threshold);
  if (!c.hot_set.empty()) s += fmt::format(", hot {}", c.hot_set.size());
  if (c.chooser)
    s += ", hybrid";
  else if (c.miss_path == MissPath::kCpu)
    s += ", cpu misses";
  if (c.host_slots > 0) s += fmt::format(", {} host slots", c.host_slots);
  return s;
}

}  // namespace cs
