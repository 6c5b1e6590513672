// `coldstream bench-offload`: measures the host's channels, then runs prefill and decode through
// the offload engine on a model (a Hugging Face directory, or a synthetic one built in memory with
// its experts in a scratch blob file) and prints each result next to the bound the channels
// imply, with hit rates, predictor precision/recall, bytes per token from each tier, stalls and
// the routing entropy. --ablation runs the cache policy x predictor grid of the offload issue.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "apps/bench_channels.h"
#include "apps/bench_synthetic.h"
#include "apps/cli_common.h"
#include "apps/offload_cli.h"
#include "cache/hybrid_chooser.h"
#include "common/error.h"
#include "common/units.h"
#include "offload/nvml.h"
#include "runtime/engine/offload_locator.h"
#include "runtime/engine/session.h"
#include "runtime/model/weight_id.h"

namespace cs::cli {
namespace {

struct BenchArgs {
  std::string model, synthetic, scratch = "/tmp", json;
  SyntheticSpec spec;
  int prefill = 2048, prompt = 512, generate = 128, threads = 0, warmup = 32;
  int rounds = 1;  // the variants run this many times, interleaved; modes compare medians
  std::string dram = "1GiB";
  std::string modes;  // "hybrid,cpu,stream": one run per offload mode
  bool ablation = false, no_channels = false;
  std::shared_ptr<OffloadFlags> offload = std::make_shared<OffloadFlags>();
};

struct Variant {
  std::string name;
  OffloadConfig cfg;
  bool no_cache = false;  // as few slots as one token needs: every layer streams
};

struct Result {
  std::string name;
  int round = 0;
  double prefill_tps = 0, prefill_bound = 0, decode_tps = 0, decode_bound = 0, ttft = 0;
  double combined_bound = 0;  // decode: the misses over PCIe and the CPU's DRAM read together
  StepTelemetry prefill_t, decode_t;
  double entropy = 0, experts_per_layer = 0;
  double cold_seconds = 0;    // the untimed warm-up prefill
  double prefill_passes = 0;  // passes per MoE layer in the prefill (1: every chunk fit)
  uint64_t vram_peak = 0;
  // Hybrid mode: the start-up calibration and the channel scales at the end of the run (the
  // split follows both; runs that calibrate slower CPU experts settle with more copies).
  nlohmann::json hybrid;
};

using Clock = std::chrono::steady_clock;

std::vector<int32_t> random_tokens(int n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = int32_t(rng() % uint64_t(vocab));
  return t;
}

Result run_variant(const Model& model, const ExpertLocator* loc, const Variant& v,
                   const BenchArgs& a, const Channels& ch) {
  Result r;
  r.name = v.name;
  OffloadOptions o;
  o.locator = loc;
  o.log = [](const std::string& s) { fmt::print(stderr, "  {}\n", s); };
  const int n_moe = int(moe_layers(model.config()).size());
  if (v.no_cache) {
    o.gpu_slots = model.config().n_experts_per_tok *
                  (v.cfg.cache.allocation == SlotAllocation::kPerLayer ? n_moe : 1);
  }
  OffloadRuntime rt(model, v.cfg, "auto", std::move(o));
  SessionOptions so;
  // Room for the longest of the runs, the untimed warm-up included.
  so.transformer.n_ctx =
      std::max(v.cfg.device.context, std::max({a.prefill, a.prompt + a.generate, a.warmup}) + 1);
  so.transformer.max_batch = v.cfg.device.max_batch;
  so.transformer.kv_dtype = DType::kBF16;  // as on the GPU in production; halves the KV cache
  so.transformer.logits_rows = 1;          // only the last logits are read: more expert slots
  OffloadMoeExecutor& ex = *rt.executor();
  const int V = model.config().vocab_size;
  // One expert blob (a slot), known once prepare() has run after the Session's allocations.
  auto blob_bytes = [&ex] { return double(ex.vram_plan().slot_bytes); };
  // Warm-up, untimed: the first tokens pay for lazy start-up work (kernel loading, library
  // handles, first touches of pinned memory) that is not part of a steady prefill or decode.
  if (a.warmup > 0) {
    Session s(model, rt.backend(), so, &ex);
    ex.prepare();
    const auto t0 = Clock::now();
    s.eval(random_tokens(a.warmup, V, 3));
    r.cold_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    fmt::print(stderr, "  warm-up: {} tokens in {:.2f} s (cold, not counted)\n", a.warmup,
               r.cold_seconds);
  }
  // Prefill.
  if (a.prefill > 0) {
    Session s(model, rt.backend(), so, &ex);
    ex.prepare();
    ex.reset_telemetry();
    const auto t0 = Clock::now();
    s.eval(random_tokens(a.prefill, V, 1));
    const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
    r.prefill_tps = a.prefill / sec;
    r.prefill_t = ex.telemetry().total;
    const int chunks = (a.prefill + so.transformer.max_batch - 1) / so.transformer.max_batch;
    r.prefill_passes = double(r.prefill_t.passes) / std::max(1, n_moe * chunks);
    const double per_tok = double(r.prefill_t.bytes_host_to_gpu) / a.prefill;
    r.prefill_bound = per_tok > 0 ? ch.copy_rate / per_tok : 0;
  }
  // Decode: a prompt, then greedy tokens; only the generated tokens are timed.
  if (a.generate > 0) {
    Session s(model, rt.backend(), so, &ex);
    ex.prepare();
    std::vector<std::vector<int>> counts;  // decode routing per MoE layer and expert
    const auto t0 = Clock::now();
    std::span<const float> logits = s.eval(random_tokens(a.prompt, V, 2));
    r.ttft = std::chrono::duration<double>(Clock::now() - t0).count();
    ex.reset_telemetry();
    // The decode routing from the executor's plans (it has the routing on the host already; a
    // transformer routing observer would add two synchronous downloads per layer to the timing).
    ex.set_plan_observer([&](const LayerPlan& p) {
      if (p.layer < 0 || p.drain) return;
      if (counts.size() <= size_t(p.layer)) counts.resize(size_t(p.layer) + 1);
      counts[size_t(p.layer)].resize(size_t(model.config().n_experts));
      for (const RoutedExpert& x : p.routed)
        counts[size_t(p.layer)][size_t(x.id.expert)] += x.tokens;
    });
    const auto t1 = Clock::now();
    for (int i = 0; i < a.generate; ++i) {
      const int32_t t = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      logits = s.eval(std::vector<int32_t>{t});
    }
    const double sec = std::chrono::duration<double>(Clock::now() - t1).count();
    ex.set_plan_observer({});
    r.decode_tps = a.generate / sec;
    r.decode_t = ex.telemetry().total;
    const double blob = blob_bytes();
    const double misses = double(r.decode_t.demand + r.decode_t.waits) / a.generate;
    const double nvme = double(r.decode_t.bytes_nvme_to_host) / a.generate;
    const double t_nvme = ch.disk_tier_rate > 0 ? nvme / ch.disk_tier_rate : 0;
    // The mode's own bound: each channel moving what this run sent through it, the slower one
    // setting the pace (cpu mode: its misses at the DRAM read rate; stream: its copies at the copy
    // rate). Only copies used to be counted, which gave the cpu mode, copying a few prefetches, a
    // bound of thousands of tokens per second.
    const double cpu_bytes = double(r.decode_t.cpu) / a.generate * blob;
    const double t_copy = ch.copy_rate > 0 ? misses * blob / ch.copy_rate + t_nvme : 0;
    const double t_cpu = ch.dram_read_rate > 0 ? cpu_bytes / ch.dram_read_rate : 0;
    const double t_bound =
        ch.copy_rate > 0 && (cpu_bytes == 0 || ch.dram_read_rate > 0) ? std::max(t_copy, t_cpu) : 0;
    r.decode_bound = t_bound > 0 ? 1.0 / t_bound : 0;
    // Both channels at once: every miss (copied or computed on the CPU) at the rate the copies
    // and the CPU's DRAM reads reached together.
    const double all_misses = misses + double(r.decode_t.cpu) / a.generate;
    const double t_comb =
        ch.combined_rate() > 0 ? all_misses * blob / ch.combined_rate() + t_nvme : 0;
    r.combined_bound = t_comb > 0 ? 1.0 / t_comb : 0;
    double h = 0, used = 0;
    int layers = 0;
    for (const auto& c : counts) {
      if (c.empty()) continue;
      double total = 0;
      for (int x : c) total += x;
      for (int x : c)
        if (x > 0) {
          const double p = x / total;
          h -= p * std::log2(p);
          used += 1;
        }
      ++layers;
    }
    r.entropy = layers ? h / layers : 0;
    r.experts_per_layer = layers ? used / layers : 0;
  }
  r.vram_peak = rt.backend().memory_used();
  if (const HybridChooser* h = ex.hybrid()) {
    const CostParams& p = h->model().params();
    r.hybrid = {{"copy_rate", p.copy_rate},
                {"dram_rate", p.dram_rate},
                {"cpu_expert_seconds", p.cpu.empty() ? 0.0 : p.cpu.front().seconds},
                {"cpu_fixed_seconds", p.cpu_fixed},
                {"copy_scale", h->copy_scale()},
                {"cpu_scale", h->cpu_scale()},
                {"cost_model", p.describe()}};
  }
  fmt::print(stderr, "{}{}\n", ex.describe(), nvml_summary(v.cfg.device.gpu));
  return r;
}

std::string pct(double got, double bound) {
  return bound > 0 ? fmt::format("{:5.1f}%", 100.0 * got / bound) : std::string("   n/a");
}

void print_result(const Result& r, int generate, int prefill) {
  const StepTelemetry& d = r.decode_t;
  const double g = std::max(1, generate);
  fmt::print(
      "{:<34} prefill {:8.1f} tok/s (bound {:8.1f}, {})  decode {:7.2f} tok/s (bound {:8.2f}, {})  "
      "hit {:5.1f}%  recall {:5.1f}%  precision {:5.1f}%  PCIe {}/tok  NVMe {}/tok  stall {:.2f} "
      "ms/tok  ttft {:.2f} s  entropy {:.2f} bits, {:.1f} experts/layer  GPU memory {}\n",
      r.name, r.prefill_tps, r.prefill_bound, pct(r.prefill_tps, r.prefill_bound), r.decode_tps,
      r.decode_bound, pct(r.decode_tps, r.decode_bound), 100.0 * d.hit_rate(),
      100.0 * d.prediction.recall(), 100.0 * d.prediction.precision(),
      format_bytes(double(d.bytes_host_to_gpu) / g), format_bytes(double(d.bytes_nvme_to_host) / g),
      1e3 * d.stall_seconds / g, r.ttft, r.entropy, r.experts_per_layer,
      format_bytes(double(r.vram_peak)));
  const double moe_ms = 1e3 * d.seconds / g;
  const double token_ms = r.decode_tps > 0 ? 1e3 / r.decode_tps : 0;
  fmt::print(
      "{:<34} decode split: {:.1f}% GPU-resident, {:.1f}% copied, {:.1f}% CPU; per token {:.2f} "
      "ms = MoE layers {:.2f} ms (routing wait {:.2f}, plan {:.2f}, CPU experts {:.2f} against "
      "copy channel {:.2f}, stall {:.2f}, model {:.2f}) + other {:.2f} ms; combined-channel bound "
      "{:.2f} tok/s ({}); prefill "
      "split {:.1f}% copied, {:.1f}% CPU, {:.2f} passes/layer, {} prefetches, {} drains\n",
      "", 100.0 * d.share(d.hits + d.waits), 100.0 * d.share(d.demand), 100.0 * d.share(d.cpu),
      token_ms, moe_ms, 1e3 * d.routing_wait_seconds / g, 1e3 * d.plan_seconds / g,
      1e3 * d.cpu_seconds / g, 1e3 * d.copy_channel_seconds / g, 1e3 * d.stall_seconds / g,
      1e3 * d.predicted_seconds / g, token_ms - moe_ms, r.combined_bound,
      pct(r.decode_tps, r.combined_bound), 100.0 * r.prefill_t.share(r.prefill_t.demand),
      100.0 * r.prefill_t.share(r.prefill_t.cpu), r.prefill_passes, r.prefill_t.prefetches,
      r.prefill_t.drains);
  (void)prefill;
}

// Hybrid against the better single mode, over one run per mode.
struct ModeComparison {
  const Result *hybrid = nullptr, *best = nullptr, *best_prefill = nullptr;
  double ratio = 0, prefill_ratio = 0;
};

ModeComparison compare(const std::vector<Result>& results) {
  ModeComparison c;
  for (const Result& r : results) {
    if (r.name == "mode hybrid") {
      c.hybrid = &r;
      continue;
    }
    if (!c.best || r.decode_tps > c.best->decode_tps) c.best = &r;
    if (!c.best_prefill || r.prefill_tps > c.best_prefill->prefill_tps) c.best_prefill = &r;
  }
  if (c.hybrid && c.best) {
    c.ratio = c.best->decode_tps > 0 ? c.hybrid->decode_tps / c.best->decode_tps : 0;
    c.prefill_ratio =
        c.best_prefill->prefill_tps > 0 ? c.hybrid->prefill_tps / c.best_prefill->prefill_tps : 0;
  }
  return c;
}

// Each mode's median over the rounds (decode and prefill separately): the host's memory
// bandwidth drifts between runs, and each round runs every mode once, in turn.
std::vector<Result> median_runs(const std::vector<Result>& results) {
  std::vector<Result> out;
  for (const Result& first : results) {
    if (std::any_of(out.begin(), out.end(), [&](const Result& r) { return r.name == first.name; }))
      continue;
    std::vector<Result> runs;
    std::vector<double> prefill;
    for (const Result& r : results)
      if (r.name == first.name) {
        runs.push_back(r);
        prefill.push_back(r.prefill_tps);
      }
    std::sort(runs.begin(), runs.end(),
              [](const Result& a, const Result& b) { return a.decode_tps < b.decode_tps; });
    std::sort(prefill.begin(), prefill.end());
    Result m = runs[runs.size() / 2];
    m.prefill_tps = prefill[prefill.size() / 2];
    out.push_back(m);
  }
  return out;
}

// --modes: hybrid against the better single-channel mode (each mode's median over the rounds, and
// each round's ratio), and against the combined bound.
nlohmann::json compare_modes(const std::vector<Result>& all, int rounds) {
  nlohmann::json per_round = nlohmann::json::array();
  if (rounds > 1) {
    std::string line;
    for (int round = 0; round < rounds; ++round) {
      std::vector<Result> runs;
      for (const Result& r : all)
        if (r.round == round) runs.push_back(r);
      const ModeComparison c = compare(runs);
      per_round.push_back(c.ratio);
      line += fmt::format("{}{:.2f}x", round ? ", " : "", c.ratio);
    }
    fmt::print("hybrid vs best single mode in each round: {}\n", line);
  }
  // Each mode's spread over the rounds, beside its median: a ratio is only as firm as the runs
  // behind it (the same binary moved by up to 15% between runs on the GPU host).
  const std::vector<Result> results = median_runs(all);
  nlohmann::json range;
  std::string spread;
  for (const Result& m : results) {
    double lo = m.decode_tps, hi = m.decode_tps;
    for (const Result& r : all)
      if (r.name == m.name) lo = std::min(lo, r.decode_tps), hi = std::max(hi, r.decode_tps);
    range[m.name] = {lo, hi};
    spread += fmt::format("{}{} {:.2f} ({:.2f}-{:.2f})", spread.empty() ? "" : ", ", m.name,
                          m.decode_tps, lo, hi);
  }
  if (rounds > 1) fmt::print("decode tok/s, median (min-max) of {} rounds: {}\n", rounds, spread);
  const ModeComparison c = compare(results);
  const Result *hybrid = c.hybrid, *best = c.best, *best_prefill = c.best_prefill;
  if (!hybrid || !best) return {};
  const double ratio = c.ratio, pratio = c.prefill_ratio;
  fmt::print(
      "hybrid vs best single mode ({}): decode {:.2f} vs {:.2f} tok/s = {:.2f}x (target 1.5x); "
      "hybrid at {} of its combined-channel bound ({:.2f} tok/s); prefill {:.1f} vs {:.1f} tok/s "
      "({}) = {:.2f}x\n",
      best->name, hybrid->decode_tps, best->decode_tps, ratio,
      pct(hybrid->decode_tps, hybrid->combined_bound), hybrid->combined_bound, hybrid->prefill_tps,
      best_prefill->prefill_tps, best_prefill->name, pratio);
  return {{"best_single", best->name},
          {"rounds", rounds},
          {"decode_ratio_per_round", per_round},
          {"median_decode_tok_s",
           [&] {
             nlohmann::json m;
             for (const Result& r : results) m[r.name] = r.decode_tps;
             return m;
           }()},
          {"decode_range_tok_s", range},
          {"decode_ratio", ratio},
          {"prefill_ratio", pratio},
          {"hybrid_of_combined_bound",
           hybrid->combined_bound > 0 ? hybrid->decode_tps / hybrid->combined_bound : 0}};
}

nlohmann::json to_json(const Result& r) {
  auto t = [](const StepTelemetry& s) {
    return nlohmann::json{{"tokens", s.tokens},
                          {"expert_uses", s.expert_uses},
                          {"hits", s.hits},
                          {"prefetch_hits", s.prefetch_hits},
                          {"waits", s.waits},
                          {"demand", s.demand},
                          {"cpu", s.cpu},
                          {"moe_seconds", s.seconds},
                          {"cpu_seconds", s.cpu_seconds},
                          {"predicted_seconds", s.predicted_seconds},
                          {"copy_channel_seconds", s.copy_channel_seconds},
                          {"routing_wait_seconds", s.routing_wait_seconds},
                          {"plan_seconds", s.plan_seconds},
                          {"bytes_host_to_gpu", s.bytes_host_to_gpu},
                          {"bytes_nvme_to_host", s.bytes_nvme_to_host},
                          {"stall_seconds", s.stall_seconds},
                          {"passes", s.passes},
                          {"prefetches", s.prefetches},
                          {"drains", s.drains},
                          {"precision", s.prediction.precision()},
                          {"recall", s.prediction.recall()}};
  };
  return {{"name", r.name},
          {"prefill_tok_s", r.prefill_tps},
          {"prefill_bound", r.prefill_bound},
          {"decode_tok_s", r.decode_tps},
          {"decode_bound", r.decode_bound},
          {"combined_bound", r.combined_bound},
          {"ttft_s", r.ttft},
          {"cold_seconds", r.cold_seconds},
          {"prefill_passes_per_layer", r.prefill_passes},
          {"routing_entropy_bits", r.entropy},
          {"experts_per_layer", r.experts_per_layer},
          {"vram_peak", r.vram_peak},
          {"prefill", t(r.prefill_t)},
          {"decode", t(r.decode_t)},
          {"hybrid", r.hybrid}};
}

void run_bench(const BenchArgs& a) {
  if (a.model.empty() == a.synthetic.empty())
    fail(ErrorKind::kInvalidArgument, "bench: give exactly one of --model and --synthetic");
  const OffloadConfig base = a.offload->resolve();
  // The variants first: a bad --modes fails before the model loads and the channels are measured.
  std::vector<Variant> variants;
  if (!a.modes.empty()) {
    for (const std::string& m : split_commas(a.modes)) {
      const auto mode = parse_offload_mode(m);
      if (!mode)
        fail(ErrorKind::kInvalidArgument, "--modes: expected hybrid, cpu or stream, got '{}'", m);
      Variant v{fmt::format("mode {}", m), base, false};
      v.cfg.offload.mode = *mode;
      variants.push_back(v);
    }
  } else if (!a.ablation) {
    variants.push_back({"configured", base, false});
  } else {
    for (const char* cache : {"none", "lru", "router_freq"})
      for (int horizon : {0, 1, 2}) {
        Variant v{fmt::format("cache {} / {}", cache,
                              horizon ? fmt::format("lookahead {}", horizon) : "no prefetch"),
                  base, std::string(cache) == "none"};
        if (!v.no_cache) v.cfg.cache.policy = *parse_policy_kind(cache);
        v.cfg.predictor.kind = horizon ? PredictorKind::kLookahead : PredictorKind::kNone;
        v.cfg.predictor.horizon = std::max(1, horizon);
        variants.push_back(v);
      }
  }
  auto log = [](const std::string& s) { fmt::print(stderr, "{}\n", s); };
  std::unique_ptr<Model> owned;
  ExpertLocator locator;
  const ExpertLocator* loc = nullptr;
  if (!a.synthetic.empty()) {
    SyntheticSpec spec = a.spec;
    spec.shape = a.synthetic;
    SyntheticModel sm = make_synthetic_model(spec, a.scratch, log);
    owned = std::move(sm.model);
    locator = std::move(sm.locator);
    loc = &locator;
  } else {
    owned = Model::load(a.model);
    if (owned->packed_file()) {  // the NVMe tier reads the packed file: measure the disk too
      locator = expert_locator(*owned->packed_file());
      loc = &locator;
    }
  }
  const Model& model = *owned;

  Channels ch;
  if (!a.no_channels) {
    auto probe = make_backend(base.device.backend);
    ch = measure_channels(*probe, loc ? *loc : ExpertLocator(), base, a.threads,
                          parse_bytes(a.dram, "--dram"));
    fmt::print("{}", format_channels(ch));
  }
  // Without measured channels (--no-channels) every bound is reported as n/a: a guessed rate
  // would print a bound the run can exceed.

  nlohmann::json out = {{"channels",
                         {{"copy_rate", ch.copy_rate},
                          {"pageable_copy_rate", ch.pageable_copy_rate},
                          {"dram_read_rate", ch.dram_read_rate},
                          {"copy_rate_with_reads", ch.copy_rate_with_reads},
                          {"dram_read_with_copies", ch.dram_read_with_copies},
                          {"combined_rate", ch.combined_rate()},
                          {"disk_raw_rate", ch.disk_raw_rate},
                          {"disk_tier_rate", ch.disk_tier_rate}}},
                        {"config", format_offload_config(base)},
                        {"runs", nlohmann::json::array()}};
  std::vector<Result> results;
  for (int round = 0; round < a.rounds; ++round) {
    if (a.rounds > 1) fmt::print("== round {} of {}\n", round + 1, a.rounds);
    for (const Variant& v : variants) {
      results.push_back(run_variant(model, loc, v, a, ch));
      results.back().round = round;
      print_result(results.back(), a.generate, a.prefill);
      nlohmann::json j = to_json(results.back());
      j["round"] = round;
      out["runs"].push_back(j);
    }
  }
  if (!a.modes.empty()) out["modes"] = compare_modes(results, a.rounds);
  if (!a.json.empty()) {
    std::ofstream f(a.json);
    if (!f) fail(ErrorKind::kIo, "--json: cannot write {}", a.json);
    f << out.dump(2) << "\n";
  }
}

}  // namespace

void register_bench_offload(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "bench-offload",
      "Measure the host's channels, then prefill and decode through the offload engine");
  cmd->add_option(
      "--model,-m", a->model,
      "A packed model (.cst; its experts are read from it) or a Hugging Face directory");
  cmd->add_option(
      "--synthetic", a->synthetic,
      "Build a random model in memory: tiny, qwen3-30b-a3b, qwen3-235b-a22b, mixtral-8x7b");
  cmd->add_option("--layers", a->spec.layers, "Synthetic: keep the first N layers");
  cmd->add_option("--vocab", a->spec.vocab, "Synthetic: vocabulary size (smaller embeddings)");
  cmd->add_option("--skew", a->spec.skew, "Synthetic: router skew (0 = uniform, 1 = Zipf-like)");
  cmd->add_option("--seed", a->spec.seed, "Synthetic: random seed");
  cmd->add_option("--scratch", a->scratch, "Synthetic: directory for the expert blob file")
      ->capture_default_str();
  cmd->add_option("--prefill", a->prefill, "Prefill prompt length (0: skip)")
      ->capture_default_str();
  cmd->add_option("--prompt", a->prompt, "Decode: prompt length before generating")
      ->capture_default_str();
  cmd->add_option("--generate", a->generate, "Decode: tokens generated (0: skip)")
      ->capture_default_str();
  cmd->add_option("--warmup", a->warmup,
                  "Tokens of an untimed prefill before the timed runs (0: none)")
      ->capture_default_str();
  cmd->add_option("--threads", a->threads,
                  "Threads for the DRAM read measurement (0: cpu.threads, as the CPU experts)");
  cmd->add_option("--dram", a->dram, "Bytes read by the DRAM measurement")->capture_default_str();
  cmd->add_option("--modes", a->modes,
                  "Run each offload mode in turn, e.g. hybrid,cpu,stream (compared at the end)");
  cmd->add_option("--rounds", a->rounds,
                  "Run the modes (or variants) this many times, interleaved; --modes compares "
                  "each mode's median")
      ->capture_default_str()
      ->check(CLI::Range(1, 20));
  cmd->add_flag("--ablation", a->ablation,
                "Run cache {none, lru, router_freq} x prefetch {none, lookahead 1, lookahead 2}");
  cmd->add_flag("--no-channels", a->no_channels, "Skip the channel measurements");
  cmd->add_option("--json", a->json, "Also write the results as JSON to this file");
  add_offload_flags(cmd, a->offload);
  cmd->callback([a] { run_bench(*a); });
}

}  // namespace cs::cli
