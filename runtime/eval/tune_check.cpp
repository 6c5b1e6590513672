#include "runtime/eval/tune_check.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "cache/hybrid_chooser.h"
#include "cache/plan.h"
#include "common/error.h"
#include "common/stats.h"
#include "offload/copy_engine.h"
#include "runtime/engine/session_runtime.h"
#include "runtime/eval/trace_io.h"
#include "runtime/eval/tuner.h"
#include "runtime/model/weight_id.h"

namespace cs {
namespace {

// The steps of the trace's first `n` requests.
RoutingTrace first_requests(const RoutingTrace& t, int n) {
  RoutingTrace p;
  p.header = t.header;
  int seen = 0;
  uint32_t request = ~0u;
  for (const TraceStep& s : t.steps) {
    if (s.request != request) {
      request = s.request;
      if (++seen > n) break;
    }
    p.steps.push_back(s);
  }
  return p;
}

// The offload runtime of a configuration and a session sized for the trace's requests.
struct CheckRun {
  std::unique_ptr<OffloadRuntime> rt;
  std::unique_ptr<Session> session;
  OffloadMoeExecutor& ex() { return *rt->executor(); }
};

CheckRun start_run(const Model& model, const RoutingTrace& trace, OffloadConfig config,
                   const CheckOptions& o) {
  if (o.vram_budget) config.device.vram_budget = o.vram_budget;
  OffloadOptions oo;
  oo.gpu_slots = o.gpu_slots;
  oo.log = o.log ? o.log : [](const std::string&) {};
  // The host-only backend copies inside copy(): prefetches have landed when the next layer is
  // planned, the replay's assumption exactly. A GPU keeps its real asynchronous copies.
  if (o.device == "cpu") oo.copy_engine = make_host_copy_engine({config.device.copy_rate, false});
  CheckRun r;
  r.rt = std::make_unique<OffloadRuntime>(model, config, o.device, std::move(oo));
  int ctx = 1, max_T = 1, request_tokens = 0;
  uint32_t request = ~0u;
  for (const TraceStep& s : trace.steps) {
    if (s.request != request) request_tokens = 0;
    request = s.request;
    request_tokens += s.T;
    ctx = std::max(ctx, request_tokens);
    max_T = std::max(max_T, s.T);
  }
  SessionOptions so;
  so.transformer.n_ctx = ctx;
  so.transformer.max_batch = max_T;  // each recorded step is one forward pass
  r.session = std::make_unique<Session>(model, r.rt->backend(), so, r.rt->executor());
  r.rt->executor()->prepare();
  return r;
}

// The trace fits the model and can be checked with these options.
void validate(const Model& model, const RoutingTrace& t, const CheckOptions& o) {
  const ModelConfig& c = model.config();
  const std::vector<int> moe = moe_layers(c);
  if (c.n_experts != t.header.n_experts || c.n_experts_per_tok != t.header.k ||
      moe != t.header.moe_layers)
    fail(ErrorKind::kInvalidArgument,
         "tune --check: the trace ({} MoE layers, {} experts, top-{}) was not recorded on this "
         "model ({} MoE layers, {} experts, top-{})",
         t.header.moe_layers.size(), t.header.n_experts, t.header.k, moe.size(), c.n_experts,
         c.n_experts_per_tok);
  if (!t.has_tokens())
    fail(ErrorKind::kInvalidArgument,
         "tune --check: the trace has no token ids (version 1, from an older `coldstream trace`); "
         "record it again");
  if (o.warmup < 0 || o.warmup >= t.requests())
    fail(ErrorKind::kInvalidArgument,
         "--warmup {}: the trace has {} requests; at least one must be left to time", o.warmup,
         t.requests());
}

}  // namespace

ExpertTimeFit fit_expert_time(const std::vector<double>& predicted,
                              const std::vector<double>& seconds,
                              const std::vector<double>& moe_seconds) {
  constexpr size_t kMinFitSteps = 24, kMinFitPairs = 50;
  ExpertTimeFit f;
  const size_t n = std::min(predicted.size(), seconds.size());
  f.steps = int(n);
  if (n == 0) return f;
  std::vector<double> sorted(predicted.begin(), predicted.begin() + ptrdiff_t(n));
  std::sort(sorted.begin(), sorted.end());
  const double p10 = sorted[n / 10], p90 = sorted[n - 1 - n / 10];
  const double min_gap = 0.1 * sorted[n / 2];
  if (n >= kMinFitSteps && p90 - p10 >= min_gap && min_gap > 0) {
    std::vector<double> slopes;
    for (size_t i = 0; i < n; ++i)
      for (size_t j = i + 1; j < n; ++j) {
        const double dp = predicted[j] - predicted[i];
        if (std::abs(dp) >= min_gap) slopes.push_back((seconds[j] - seconds[i]) / dp);
      }
    if (slopes.size() >= kMinFitPairs) {
      const double s = median(std::move(slopes));
      if (s >= 0.5 && s <= 3.0) {
        f.scale = s;
        f.fitted = true;
      }
    }
  }
  auto rest_at = [&](double scale) {
    std::vector<double> rest(n);
    for (size_t i = 0; i < n; ++i) rest[i] = seconds[i] - scale * predicted[i];
    return median(std::move(rest));
  };
  f.rest = rest_at(f.scale);
  if (f.fitted && f.rest <= 0) {
    // Every step does non-expert work (attention, lm_head, sampling): a slope that leaves none
    // comes from noisy steps (a busy machine), not from the experts. Take the model as it is.
    f.scale = 1;
    f.fitted = false;
    f.rest = rest_at(1);
  }
  if (f.rest <= 0 && moe_seconds.size() >= n) {
    // The model charges more than the steps took: split them as the executor measured them.
    std::vector<double> rest(n), ratio;
    for (size_t i = 0; i < n; ++i) {
      rest[i] = seconds[i] - moe_seconds[i];
      if (predicted[i] > 0) ratio.push_back(moe_seconds[i] / predicted[i]);
    }
    f.rest = median(std::move(rest));
    if (!ratio.empty()) f.scale = std::clamp(median(std::move(ratio)), 0.5, 3.0);
    f.measured = true;
  }
  return f;
}

CheckCost check_cost_from_profile(const HardwareProfile& hw, const ModelShape& shape) {
  CheckCost c;
  c.cost = hw.cost_params(shape.expert_bytes);
  c.time.step_seconds = dense_step_seconds(shape, hw);
  c.note = fmt::format(
      "hardware profile {} ({}); non-expert time {:.3f} ms per step (dense weights at {:.0f} GB/s)",
      hw.name, hw.origin, 1e3 * c.time.step_seconds, hw.vram_bw / 1e9);
  return c;
}

namespace {

// One warm-up run of `config`: each step's wall time against the cost model's time of its
// expert passes (as the replay charges them: a layer's prefetches occupy the next layer's first
// pass), fitted (fit_expert_time).
struct WarmupFit {
  CostParams params;  // the cost model the predictions used
  CheckTime time;
  ExpertTimeFit fit;
  size_t prefill_steps = 0;
};

// `params`: the cost model's parameters; null: the run's own start-up calibration (REQUIRES then
// a hybrid configuration).
WarmupFit fit_warmup(const Model& model, const RoutingTrace& trace, const OffloadConfig& config,
                     const CostParams* params, const CheckOptions& o) {
  CheckRun run = start_run(model, trace, config, o);
  WarmupFit w;
  if (params) {
    w.params = *params;
  } else {
    if (!run.ex().hybrid()) fail(ErrorKind::kInternal, "calibration: the hybrid scheduler is off");
    w.params = run.ex().hybrid()->model().params();
  }
  const CostModel cm(w.params);
  double pred = 0;
  int carried = 0;
  run.ex().set_plan_observer([&](const LayerPlan& p) { pred += plan_seconds(p, cm, carried); });
  std::vector<double> d_pred, d_sec, d_moe, p_pred, p_sec;
  double moe_before = run.ex().telemetry().total.seconds;
  int64_t prefill_tokens = 0;
  run_trace_steps(*run.session, first_requests(trace, o.warmup),
                  [&](const TraceStep& s, double sec) {
                    (s.T == 1 ? d_pred : p_pred).push_back(pred);
                    (s.T == 1 ? d_sec : p_sec).push_back(sec);
                    const double moe = run.ex().telemetry().total.seconds;  // closes the step
                    if (s.T == 1) d_moe.push_back(moe - moe_before);
                    moe_before = moe;
                    if (s.T > 1) prefill_tokens += s.T;
                    pred = 0;
                  });
  run.ex().set_plan_observer({});
  w.fit = fit_expert_time(d_pred, d_sec, d_moe);
  w.time.expert_scale = w.fit.scale;
  w.time.step_seconds = std::max(0.0, w.fit.rest);
  // Each token of a prefill step past the first (a one-token step costs step_seconds).
  w.prefill_steps = p_sec.size();
  const int64_t steps = int64_t(p_sec.size());
  if (prefill_tokens > steps) {
    double rest = 0;
    for (size_t i = 0; i < p_sec.size(); ++i) rest += p_sec[i] - w.fit.scale * p_pred[i];
    w.time.token_seconds = std::max(
        0.0, (rest - double(steps) * w.time.step_seconds) / double(prefill_tokens - steps));
  }
  return w;
}

std::string describe_fit(const char* what, const WarmupFit& w) {
  return fmt::format(
      "{}: expert time x {:.2f} ({}), non-expert time {:.3f} ms per step + {:.4f} ms per prefill "
      "token ({} decode, {} prefill steps)",
      what, w.time.expert_scale,
      w.fit.fitted     ? "fitted"
      : w.fit.measured ? "split as measured: the model overcharged"
                       : "not fitted: no believable slope",
      1e3 * w.time.step_seconds, 1e3 * w.time.token_seconds, w.fit.steps, w.prefill_steps);
}

}  // namespace

CheckCost calibrate_check_cost(const Model& model, const RoutingTrace& trace,
                               const CheckOptions& o) {
  validate(model, trace, o);
  if (o.warmup < 1)
    fail(ErrorKind::kInvalidArgument,
         "--hardware calibrate measures the non-expert time on the warm-up requests: give "
         "--warmup 1 or more");
  OffloadConfig cfg;  // the default: hybrid, calibrated at start
  cfg.offload.mode = OffloadMode::kHybrid;
  cfg.offload.calibrate = true;
  cfg.offload.adapt = 0;  // the replay does not adapt: keep the calibrated model as it is
  const WarmupFit hybrid = fit_warmup(model, trace, cfg, nullptr, o);
  OffloadConfig stream = cfg;
  stream.offload.mode = OffloadMode::kStream;
  const WarmupFit streamed = fit_warmup(model, trace, stream, &hybrid.params, o);
  CheckCost c;
  c.cost = hybrid.params;
  c.time = hybrid.time;
  c.stream_time = streamed.time;
  c.note = fmt::format("calibrated on this machine ({}): {}; over {} warm-up request(s): {}; {}",
                       o.device, c.cost.describe(), o.warmup,
                       describe_fit("default configuration", hybrid),
                       describe_fit("in stream mode", streamed));
  return c;
}

ReplayConfig replay_config(const OffloadConfig& cfg, int gpu_slots, const RoutingTrace& trace) {
  ReplayConfig rc;
  rc.gpu_slots = gpu_slots;
  rc.allocation = cfg.cache.allocation;
  rc.policy = cfg.cache.policy;
  rc.decay = cfg.cache.decay;
  rc.predictor = cfg.predictor.kind;
  rc.horizon = cfg.predictor.horizon;
  rc.threshold = cfg.predictor.threshold;
  rc.top_k = cfg.predictor.top_k;
  rc.prefetch_share = cfg.cache.prefetch_share;
  rc.prefetch_copies = cfg.cache.prefetch_copies;
  rc.miss_path = cfg.offload.mode == OffloadMode::kCpu ? MissPath::kCpu : MissPath::kStream;
  rc.host_policy = cfg.cache.host_policy;
  const TraceHeader& h = trace.header;
  const uint64_t total = uint64_t(h.moe_layers.size()) * uint64_t(h.n_experts);
  if (cfg.memory.host_budget && h.expert_bytes) {
    const uint64_t n = cfg.memory.host_budget / h.expert_bytes;
    rc.host_slots = n >= total ? 0 : int(n);
  }
  if (!cfg.cache.hot_set.empty())
    rc.hot_set = load_hot_set_file(cfg.cache.hot_set, h.n_layers, h.n_experts);
  return rc;
}

CheckResult check_config(const Model& model, const RoutingTrace& trace, const std::string& name,
                         const OffloadConfig& config, const CheckCost& cost,
                         const CheckOptions& o) {
  validate(model, trace, o);
  CheckResult r;
  r.name = name;
  CheckRun run = start_run(model, trace, config, o);
  r.gpu_slots = run.ex().gpu_slots();

  // The simulator, at the runtime's slot count; the hybrid split uses the executor's own
  // calibrated model (without the run's adaptation).
  const CostModel cm(cost.cost);
  ReplayConfig base = replay_config(config, r.gpu_slots, trace);
  base.cost = &cm;
  const CheckTime& time = cost.for_mode(config.offload.mode);
  base.step_seconds = time.step_seconds;
  base.token_seconds = time.token_seconds;
  base.expert_scale = time.expert_scale;
  auto replay = [&](const RoutingTrace& t) {
    ReplayConfig rc = base;
    std::unique_ptr<HybridChooser> chooser;
    if (config.offload.mode == OffloadMode::kHybrid) {
      chooser =
          std::make_unique<HybridChooser>(run.ex().hybrid() ? run.ex().hybrid()->model() : cm, 0.0);
      rc.chooser = chooser.get();
    }
    return replay_trace(t, rc);
  };
  r.simulated = replay(trace);
  ReplayResult warm;
  if (o.warmup > 0) warm = replay(first_requests(trace, o.warmup));
  const double sim_s = r.simulated.decode_seconds - warm.decode_seconds;
  const double sim_tokens = double(r.simulated.decode_tokens - warm.decode_tokens);
  r.sim_decode_tok_s = sim_s > 0 ? sim_tokens / sim_s : 0;

  // The real run, teacher-forced on the trace's tokens. The plans say what the routers chose:
  // compared with the trace, token by token (host-side counting, no extra synchronisation).
  const TraceHeader& h = trace.header;
  std::vector<int> layer_index(size_t(h.n_layers), -1);
  for (size_t i = 0; i < h.moe_layers.size(); ++i) layer_index[size_t(h.moe_layers[i])] = int(i);
  std::vector<int> traced(size_t(h.n_experts));
  size_t done = 0;  // steps run so far: the plans seen belong to trace.steps[done]
  uint64_t same = 0, total = 0;
  run.ex().set_plan_observer([&](const LayerPlan& p) {
    if (done >= trace.steps.size() || p.layer < 0 || p.layer >= h.n_layers ||
        layer_index[size_t(p.layer)] < 0)
      return;
    const TraceLayer& l = trace.steps[done].layers[size_t(layer_index[size_t(p.layer)])];
    for (int32_t e : l.ids) ++traced[size_t(e)];
    total += l.ids.size();
    for (const RoutedExpert& x : p.routed)
      if (x.id.expert >= 0 && x.id.expert < h.n_experts)
        same += uint64_t(std::min(x.tokens, traced[size_t(x.id.expert)]));
    for (int32_t e : l.ids) traced[size_t(e)] = 0;
  });
  int request_no = -1;
  uint32_t request = ~0u;
  run_trace_steps(*run.session, trace, [&](const TraceStep& s, double sec) {
    ++done;
    if (s.request != request) {
      request = s.request;
      ++request_no;
    }
    r.wall_seconds += sec;
    if (s.T == 1 && request_no >= o.warmup) {
      r.decode_seconds += sec;
      ++r.decode_tokens;
    }
  });
  run.ex().set_plan_observer({});
  r.routing_agreement = total ? double(same) / double(total) : 0;
  r.measured = run.ex().telemetry().total;
  r.decode_tok_s = r.decode_seconds > 0 ? double(r.decode_tokens) / r.decode_seconds : 0;
  return r;
}

nlohmann::json check_json(const CheckResult& r) {
  const ReplayResult& s = r.simulated;
  const StepTelemetry& m = r.measured;
  return {{"name", r.name},
          {"gpu_slots", r.gpu_slots},
          {"routing_agreement", r.routing_agreement},
          {"simulated",
           {{"expert_uses", s.expert_uses},
            {"hit_rate", s.hit_rate()},
            {"served_rate", s.served_rate()},
            {"demand", s.demand},
            {"cpu", s.cpu},
            {"prefetches", s.prefetches},
            {"decode_tok_s", r.sim_decode_tok_s}}},
          {"measured",
           {{"expert_uses", m.expert_uses},
            {"hit_rate", m.hit_rate()},
            {"served_rate", m.share(m.hits + m.waits)},
            {"waits", m.waits},
            {"demand", m.demand},
            {"cpu", m.cpu},
            {"prefetches", m.prefetches},
            {"decode_tok_s", r.decode_tok_s},
            {"decode_tokens", r.decode_tokens},
            {"decode_seconds", r.decode_seconds},
            {"wall_seconds", r.wall_seconds}}}};
}

std::string format_check_line(const CheckResult& r) {
  const StepTelemetry& m = r.measured;
  const double m_served = m.share(m.hits + m.waits);
  const ReplayResult& s = r.simulated;
  return fmt::format(
      "check {}: simulated hit {:.1f}% served {:.1f}% {:.1f} tok/s | measured hit {:.1f}% served "
      "{:.1f}% {:.1f} tok/s | diff hit {:+.1f} pt, served {:+.1f} pt, tok/s {:+.1f}% ({} GPU "
      "slots, routing {:.2f}% as traced)",
      r.name, 100 * s.hit_rate(), 100 * s.served_rate(), r.sim_decode_tok_s, 100 * m.hit_rate(),
      100 * m_served, r.decode_tok_s, 100 * (s.hit_rate() - m.hit_rate()),
      100 * (s.served_rate() - m_served),
      r.decode_tok_s > 0 ? 100 * (r.sim_decode_tok_s / r.decode_tok_s - 1) : 0.0, r.gpu_slots,
      100 * r.routing_agreement);
}

}  // namespace cs
