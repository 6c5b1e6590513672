// The trace simulator is honest: on the demo model (real routing), a trace recorded by
// `coldstream trace`'s recorder and replayed through the runtime's planner, caches and predictors
// gives the hit rate that a real offload run (host-only backend and copy engine) measures, within
// one percentage point, for several policies, budgets, predictors and both miss paths; the
// cost-model prediction of the run's time is within 15% of the measured time when copies are
// throttled to dominate; the tuned configuration is at least as good as the default in replay;
// `tune --check` runs the model teacher-forced on the trace and measures the replay's hit rate.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include "cache/cost_model.h"
#include "cache/trace_replay.h"
#include "common/error.h"
#include "offload/copy_engine.h"
#include "runtime/engine/offload_moe_executor.h"
#include "runtime/eval/trace_io.h"
#include "runtime/eval/trace_recorder.h"
#include "runtime/eval/tune_check.h"
#include "runtime/eval/tuner.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/common/fixtures.h"

using namespace cs;

namespace {

std::string demo_path() {
  return test::fixture_dir() + "/../../models/coldstream-demo.cst";
}

// Held-out text cut into requests: `n` prompts of `prompt` tokens, `gen` greedy tokens each.
std::vector<TraceRequest> requests(const Model& m, int n, int prompt, int gen) {
  std::ifstream in(test::fixture_dir() + "/demo/heldout_small.txt");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::vector<int32_t> ids = m.tokenizer()->encode(ss.str().substr(0, 200000));
  std::vector<TraceRequest> out;
  for (int i = 0; i < n; ++i) {
    TraceRequest r;
    const size_t at = size_t(i) * 997 % (ids.size() - size_t(prompt));
    r.prompt.assign(ids.begin() + ptrdiff_t(at), ids.begin() + ptrdiff_t(at) + prompt);
    r.max_tokens = gen;
    out.push_back(r);
  }
  return out;
}

RoutingTrace record(const Model& m, Backend& b, const std::vector<TraceRequest>& reqs) {
  TraceRecorderOptions o;
  o.lookahead = 2;
  TraceRecorder rec(b, m, o);
  Session s(m, b, {}, &rec);
  run_trace_requests(
      s, m, reqs,
      [&](size_t) {
        rec.begin_request();
        return true;
      },
      [&](std::span<const int32_t> t) { rec.feed(t); });
  // Through the file format, as `coldstream tune` reads it.
  return decode_trace(encode_trace(rec.take()), "memory");
}

struct Measured {
  StepTelemetry t;
  double seconds = 0;
};

Measured run_offload(const Model& m, Backend& b, const std::vector<TraceRequest>& reqs,
                     const ReplayConfig& rc, double copy_rate) {
  OffloadOptions o;
  o.config.cache.policy = rc.policy;
  o.config.cache.allocation = rc.allocation;
  o.config.predictor.kind = rc.predictor;
  o.config.predictor.horizon = rc.horizon;
  o.config.predictor.threshold = rc.threshold;
  o.config.offload.mode = rc.miss_path == MissPath::kCpu ? OffloadMode::kCpu : OffloadMode::kStream;
  o.gpu_slots = rc.gpu_slots;
  // Synchronous copies: each lands inside copy(), so prefetches have landed when the next layer
  // is planned (the replay's timing assumption) and a throttled copy's time is on the clock.
  o.copy_engine = make_host_copy_engine({copy_rate, false});
  o.log = [](const std::string&) {};
  test::TempDir dir;
  if (!rc.hot_set.empty()) {
    o.config.cache.hot_set = dir.file("hot.txt");
    std::ofstream(o.config.cache.hot_set) << format_hot_set(rc.hot_set);
  }
  OffloadMoeExecutor ex(b, m, std::move(o));
  Session s(m, b, {}, &ex);
  ex.prepare();
  const auto t0 = std::chrono::steady_clock::now();
  run_trace_requests(s, m, reqs, {});
  Measured r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.t = ex.telemetry().total;
  return r;
}

}  // namespace

TEST_CASE("trace replay: hit rate equals a real offload run's within 1 point (demo model)") {
  auto m = Model::load(demo_path());
  auto b = make_cpu_reference_backend();
  const auto reqs = requests(*m, 3, 48, 16);
  const RoutingTrace trace = record(*m, *b, reqs);
  REQUIRE(trace.requests() == 3);
  REQUIRE(trace.steps.size() > 40);
  std::vector<ReplayConfig> configs;
  auto add = [&](int slots, PolicyKind p, PredictorKind pk, int h, double th) -> ReplayConfig& {
    ReplayConfig c;
    c.gpu_slots = slots;
    c.policy = p;
    c.predictor = pk;
    c.horizon = h;
    c.threshold = th;
    configs.push_back(c);
    return configs.back();
  };
  add(12, PolicyKind::kLru, PredictorKind::kNone, 1, 0.05);
  add(32, PolicyKind::kLfu, PredictorKind::kLookahead, 1, 0.05);
  add(64, PolicyKind::kRouterFreq, PredictorKind::kCoactivation, 1, 0.1);
  add(128, PolicyKind::kRouterFreq, PredictorKind::kLookahead, 2, 0.0);
  add(64, PolicyKind::kLru, PredictorKind::kLookahead, 1, 0.05).allocation =
      SlotAllocation::kPerLayer;
  add(24, PolicyKind::kLru, PredictorKind::kLookahead, 1, 0.05).miss_path = MissPath::kCpu;
  add(96, PolicyKind::kLfu, PredictorKind::kLookahead, 1, 0.2).hot_set =
      hot_set_from_trace(trace, 24);
  for (const ReplayConfig& c : configs) {
    CAPTURE(describe(c));
    const ReplayResult r = replay_trace(trace, c);
    const Measured got = run_offload(*m, *b, reqs, c, 0);
    CHECK(r.expert_uses == got.t.expert_uses);
    CHECK(r.expert_uses > 1000);
    const double real = got.t.hit_rate();
    CHECK(std::abs(r.hit_rate() - real) <= 0.01);
    CHECK(std::abs(double(r.demand) - double(got.t.demand)) <= 0.01 * double(r.expert_uses));
    CHECK(std::abs(double(r.cpu) - double(got.t.cpu)) <= 0.01 * double(r.expert_uses));
    CHECK(r.prefetches == got.t.prefetches);
    if (c.predictor != PredictorKind::kNone) {
      CHECK(r.prediction.predicted == got.t.prediction.predicted);
      CHECK(r.prediction.correct == got.t.prediction.correct);
    }
    MESSAGE(fmt::format("{}: replay {:.4f}, measured {:.4f}", describe(c), r.hit_rate(), real));
  }
}

TEST_CASE("trace replay: predicted time within 15% of a throttled host-only run (demo model)") {
  auto m = Model::load(demo_path());
  auto b = make_cpu_reference_backend();
  const auto reqs = requests(*m, 1, 8, 8);
  const RoutingTrace trace = record(*m, *b, reqs);
  ReplayConfig c;
  c.gpu_slots = 16;
  c.policy = PolicyKind::kLru;
  c.predictor = PredictorKind::kLookahead;
  // The compute of this run with free copies: the calibration of the host machine.
  const Measured free = run_offload(*m, *b, reqs, c, 0);
  // Copies throttled to 12 ms each (about 5 s in all), so that they govern the run on a loaded
  // 2-core machine too: there the compute of the free run (measured while other processes
  // compete) and of the throttled run (whose thread sleeps in the copies) differ by up to 0.5 s.
  const double rate = double(trace.header.expert_bytes) / 0.012;
  CostParams p;
  p.expert_bytes = trace.header.expert_bytes;
  p.copy_rate = rate;
  p.copy_latency = 0;
  p.gpu_rate = 1e18;  // the compute is in `free.seconds`
  p.layer_fixed = 0;
  p.cpu_fixed = 0;
  const CostModel cost(p);
  c.cost = &cost;
  const ReplayResult r = replay_trace(trace, c);
  const Measured slow = run_offload(*m, *b, reqs, c, rate);
  const double predicted = r.seconds + free.seconds;
  MESSAGE(
      fmt::format("copies {}, predicted {:.3f} s (copies {:.3f} s + compute {:.3f} s), "
                  "measured {:.3f} s",
                  r.gpu_copies, predicted, r.seconds, free.seconds, slow.seconds));
  CHECK(r.gpu_copies > 150);
  CHECK(std::abs(predicted - slow.seconds) / slow.seconds < 0.15);
  const double tok = double(trace.tokens());
  CHECK(std::abs(tok / predicted - tok / slow.seconds) / (tok / slow.seconds) < 0.15);
}

TEST_CASE("tune: the best configuration beats or matches the default in replay, and loads") {
  auto m = Model::load(demo_path());
  auto b = make_cpu_reference_backend();
  const RoutingTrace trace = record(*m, *b, requests(*m, 2, 32, 12));
  ModelShape shape = load_model_shape(demo_path());
  TuneOptions o;
  o.hardware = load_hardware_profile("rtx4090", test::fixture_dir() + "/../../configs/hardware");
  o.gpu_slots = 48;
  const TuneReport r = tune(trace, shape, o);
  REQUIRE(r.rows.size() > 20);
  const ReplayResult& best = r.rows.front().result;
  const ReplayResult& def = r.rows[r.default_row].result;
  CHECK(best.seconds <= def.seconds);
  // Belady bounds every online policy without prefetch at the same size.
  for (const TuneRow& row : r.rows)
    if (row.candidate.replay.predictor == PredictorKind::kNone && row.candidate.hot == 0 &&
        row.candidate.replay.allocation == SlotAllocation::kGlobal &&
        row.candidate.mode == OffloadMode::kStream)
      CHECK(row.result.hit_rate() <= r.belady.hit_rate() + 1e-12);
  test::TempDir dir;
  const OffloadConfig cfg = candidate_config(r.rows.front().candidate, o, dir.file("hot"));
  const std::string text = format_tuned_config(r, cfg, "test");
  std::ofstream(dir.file("t.toml")) << text;
  OffloadConfig loaded;
  load_offload_config(dir.file("t.toml"), loaded);
  CHECK(loaded.cache.policy == r.rows.front().candidate.replay.policy);
  CHECK(loaded.predictor.kind == r.rows.front().candidate.replay.predictor);
  CHECK(format_curves_svg(r).find("<polyline") != std::string::npos);
}

TEST_CASE("tune: the tuned configuration is at least as fast as the default in a real run") {
  // The host-only backend with copies throttled to 1 ms each stands for a PCIe-bound machine;
  // the tuner's cost model gets that copy rate and the compute measured with free copies.
  auto m = Model::load(demo_path());
  auto b = make_cpu_reference_backend();
  const auto reqs = requests(*m, 2, 24, 10);
  const RoutingTrace trace = record(*m, *b, reqs);
  const double copy_s = 0.001, rate = double(trace.header.expert_bytes) / copy_s;
  TuneOptions o;
  o.hardware = load_hardware_profile("rtx4090", test::fixture_dir() + "/../../configs/hardware");
  o.hardware.pcie = rate;
  o.hardware.gpu_kernel_rate = 1e18;
  o.gpu_slots = 40;
  ReplayConfig def;
  def.gpu_slots = o.gpu_slots;
  const Measured free = run_offload(*m, *b, reqs, def, 0);
  o.step_seconds = free.seconds / double(trace.steps.size());
  o.token_seconds = 0;
  const TuneReport r = tune(trace, load_model_shape(demo_path()), o);
  const TuneCandidate& best = r.rows.front().candidate;
  ReplayConfig tuned = best.replay;
  tuned.hot_set = r.hot_set;
  const Measured mt = run_offload(*m, *b, reqs, tuned, rate);
  const Measured md = run_offload(*m, *b, reqs, def, rate);
  MESSAGE(fmt::format("tuned ({}): {:.3f} s, hit {:.3f}; default: {:.3f} s, hit {:.3f}",
                      best.label(), mt.seconds, mt.t.hit_rate(), md.seconds, md.t.hit_rate()));
  CHECK(r.rows.front().result.seconds <= r.rows[r.default_row].result.seconds);
  CHECK(mt.seconds <= md.seconds * 1.05);
}

TEST_CASE("tune --check: a teacher-forced host-only run measures the simulator's hit rate") {
  // The trace keeps the token ids fed; a run forced on them routes as traced, so the measured
  // counts are the replay's (host-only copies are synchronous: the replay's timing assumption).
  auto m = Model::load(demo_path());
  auto b = make_cpu_backend();  // the backend of --device cpu, as `coldstream trace` records
  const RoutingTrace trace = record(*m, *b, requests(*m, 3, 40, 12));
  REQUIRE(trace.has_tokens());
  uint64_t timed = 0;
  for (const TraceStep& s : trace.steps) timed += s.T == 1 && s.request > 0;
  CheckOptions o;
  o.device = "cpu";
  o.gpu_slots = 40;
  o.warmup = 1;
  const CheckCost cost = check_cost_from_profile(
      load_hardware_profile("rtx4090", test::fixture_dir() + "/../../configs/hardware"),
      load_model_shape(demo_path()));
  std::vector<std::pair<std::string, OffloadConfig>> configs(5);
  configs[0].first = "default";  // hybrid: the executor adapts its split, the replay does not
  configs[1].first = "stream lru";
  configs[1].second.offload.mode = OffloadMode::kStream;
  configs[1].second.cache.policy = PolicyKind::kLru;
  configs[1].second.predictor.kind = PredictorKind::kNone;
  configs[2].first = "stream lookahead 2";
  configs[2].second.offload.mode = OffloadMode::kStream;
  configs[2].second.predictor.horizon = 2;
  configs[3].first = "cpu lfu";
  configs[3].second.offload.mode = OffloadMode::kCpu;
  configs[3].second.cache.policy = PolicyKind::kLfu;
  configs[4].first = "hybrid without adaptation";  // the split is the replay's: same counts
  configs[4].second.offload.adapt = 0;
  for (const auto& [name, cfg] : configs) {
    CAPTURE(name);
    const CheckResult r = check_config(*m, trace, name, cfg, cost, o);
    MESSAGE(format_check_line(r));
    CHECK(r.gpu_slots == 40);
    // Streamed experts compute as when traced; a CPU expert's int8 activations can flip a near
    // tie in a later router.
    if (cfg.offload.mode == OffloadMode::kStream)
      CHECK(r.routing_agreement == 1.0);
    else
      CHECK(r.routing_agreement > 0.99);
    CHECK(r.measured.expert_uses == r.simulated.expert_uses);
    CHECK(r.simulated.expert_uses > 1000);
    if (name != "default") {
      CHECK(std::abs(r.simulated.hit_rate() - r.measured.hit_rate()) <= 0.01);
      CHECK(r.measured.waits == 0);
      // Exact when every expert computes as traced; a flipped near tie (CPU experts, seen on an
      // AVX-512 host) may move a prediction or two.
      if (cfg.offload.mode == OffloadMode::kStream)
        CHECK(r.measured.prefetches == r.simulated.prefetches);
      else
        CHECK(std::abs(double(r.measured.prefetches) - double(r.simulated.prefetches)) <=
              0.01 * double(r.simulated.prefetches));
    }
    // Timed: the decode steps of the requests after the warm-up one.
    CHECK(r.decode_tokens == timed);
    CHECK(r.decode_tokens > 10);
    CHECK(r.decode_tok_s > 0);
    CHECK(r.sim_decode_tok_s > 0);
    CHECK(format_check_line(r).find("| measured hit") != std::string::npos);
  }
  // This machine's cost model: the warm-up request's non-expert time is measured.
  const CheckCost cal = calibrate_check_cost(*m, trace, o);
  CHECK(cal.time.step_seconds > 0);
  REQUIRE(cal.stream_time.has_value());
  CHECK(cal.stream_time->step_seconds >= 0);  // clamped: the model may overcharge stream steps
  CHECK(cal.note.find("in stream mode") != std::string::npos);
  CHECK(&cal.for_mode(OffloadMode::kStream) == &*cal.stream_time);
  CHECK(&cal.for_mode(OffloadMode::kCpu) == &cal.time);
  CHECK(cal.cost.copy_rate > 0);
  CHECK(cal.note.find("calibrated") != std::string::npos);
  // A version 1 trace (no ids) is refused with a message.
  RoutingTrace old = trace;
  for (TraceStep& s : old.steps) s.tokens.clear();
  CHECK_THROWS_WITH_AS(check_config(*m, old, "x", {}, cost, o), doctest::Contains("token ids"),
                       Error);
  RoutingTrace other = trace;
  other.header.n_experts += 1;
  CHECK_THROWS_WITH_AS(check_config(*m, other, "x", {}, cost, o),
                       doctest::Contains("not recorded on this model"), Error);
  o.warmup = 3;  // every request
  CHECK_THROWS_WITH_AS(check_config(*m, trace, "x", {}, cost, o),
                       doctest::Contains("at least one must be left"), Error);
}

TEST_CASE("tune --check: the expert-time fit measures what a miss costs around the model") {
  // Decode steps of a filling cache: the predicted expert time falls from 6 to 1 ms while each
  // step really costs 2 ms + 1.3 x the prediction, with 3% noise and two slow steps (one-off
  // costs of a fresh runtime).
  std::mt19937 rng(11);
  std::normal_distribution<double> noise(1.0, 0.03);
  std::vector<double> pred, sec;
  for (int i = 0; i < 64; ++i) {
    const double p = 1e-3 + 5e-3 * std::exp(-i / 12.0);
    pred.push_back(p);
    sec.push_back((2e-3 + 1.3 * p) * noise(rng));
  }
  sec[0] += 20e-3;
  sec[1] += 10e-3;
  const ExpertTimeFit f = fit_expert_time(pred, sec);
  CHECK(f.fitted);
  CHECK(f.steps == 64);
  CHECK(f.scale == doctest::Approx(1.3).epsilon(0.08));
  CHECK(f.rest == doctest::Approx(2e-3).epsilon(0.08));
  // Taking the model as it is (scale 1) would charge every step the misses' extra cost of the
  // warm-up's median step: a run with fewer misses would be predicted too slow.
  std::vector<double> rest1(sec.size());
  for (size_t i = 0; i < sec.size(); ++i) rest1[i] = sec[i] - pred[i];
  std::nth_element(rest1.begin(), rest1.begin() + 32, rest1.end());
  CHECK(rest1[32] > f.rest + 0.2e-3);
  // Without spread in the predictions there is no slope to measure: scale 1, rest the median.
  std::vector<double> same(64, 3e-3), timed(64, 5e-3);
  const ExpertTimeFit none = fit_expert_time(same, timed);
  CHECK_FALSE(none.fitted);
  CHECK(none.scale == 1);
  CHECK(none.rest == doctest::Approx(2e-3));
  // A slope outside [0.5, 3] is not believed.
  std::vector<double> steep(pred.size());
  for (size_t i = 0; i < pred.size(); ++i) steep[i] = 10 * pred[i];
  CHECK_FALSE(fit_expert_time(pred, steep).fitted);
  CHECK(fit_expert_time({}, {}).scale == 1);
  // A slope in range that leaves no non-expert time (steps timed on a busy machine: the slow
  // ones happen to be those with more misses) is dropped for the model as it is.
  std::vector<double> busy(pred.size());
  for (size_t i = 0; i < pred.size(); ++i) busy[i] = 2.5 * pred[i] - 1.5e-3;
  const ExpertTimeFit dropped = fit_expert_time(pred, busy);
  CHECK_FALSE(dropped.fitted);
  CHECK(dropped.scale == 1);
  CHECK(dropped.rest > 0);
  // A model that charges more than 11 steps took (too few to fit; calibrated during a load
  // spike): with the executor's own MoE times the steps are split as measured.
  std::vector<double> few(pred.begin(), pred.begin() + 11), over(11), moe(11);
  for (size_t i = 0; i < few.size(); ++i) {
    moe[i] = 0.6 * few[i];
    over[i] = 0.2e-3 + moe[i];
  }
  const ExpertTimeFit unsplit = fit_expert_time(few, over);
  CHECK(unsplit.rest <= 0);
  CHECK_FALSE(unsplit.measured);
  const ExpertTimeFit split = fit_expert_time(few, over, moe);
  CHECK(split.measured);
  CHECK(split.rest == doctest::Approx(0.2e-3));
  CHECK(split.scale == doctest::Approx(0.6));
}
