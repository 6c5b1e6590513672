// `coldstream tune`: replays a routing trace (`coldstream trace`) through every candidate offload
// configuration with the runtime's own cache, predictor and planner code, predicts time with the
// cost model of a hardware profile, prints the ranking, and writes the best configuration (TOML),
// its hot-set profile and a plot of hit rate against cache size per policy (SVG). With --check it
// instead compares the simulator with real runs of given configurations (runtime/eval/
// tune_check.h).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "apps/cli_common.h"
#include "common/error.h"
#include "common/units.h"
#include "runtime/engine/session_runtime.h"
#include "runtime/eval/trace_io.h"
#include "runtime/eval/tune_check.h"
#include "runtime/eval/tuner.h"

namespace cs::cli {
namespace {

struct TuneArgs {
  std::string model, trace, hardware = "rtx4090", hardware_dir, vram_budget, host_budget;
  std::string out = "tuned.toml", hot_out, plot;
  int slots = 0, rows = 15, ctx = 4096;
  std::vector<std::string> check;  // --check: configurations to measure ("default" or TOML)
  std::string device = "cuda", json;
  int warmup = 1;
  bool hardware_given = false;
};

void write_text(const std::string& path, const std::string& text, const char* flag) {
  std::ofstream f(path);
  if (!f) fail(ErrorKind::kIo, "{}: cannot write '{}'", flag, path);
  f << text;
  if (!f) fail(ErrorKind::kIo, "{}: writing '{}' failed", flag, path);
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return buf;
}

// --check: replay and real run of each configuration, side by side (runtime/eval/tune_check.h).
void run_check(const TuneArgs& a) {
  const RoutingTrace trace = read_trace_file(a.trace);
  std::vector<OffloadConfig> configs;  // all loaded first: a bad file fails before any run
  for (const std::string& name : a.check) {
    RuntimeConfig rc;
    if (name != "default") rc.load_file(name);
    configs.push_back(rc.offload);
  }
  auto model = Model::load(a.model);
  CheckOptions o;
  o.device = a.device;
  o.gpu_slots = a.slots;
  o.warmup = a.warmup;
  if (!a.vram_budget.empty()) o.vram_budget = parse_bytes(a.vram_budget, "--vram-budget");
  const bool calibrate = a.hardware == "calibrate" || !a.hardware_given;
  const CheckCost cost =
      calibrate
          ? calibrate_check_cost(*model, trace, o)
          : check_cost_from_profile(
                load_hardware_profile(
                    a.hardware, a.hardware_dir.empty() ? default_hardware_dir() : a.hardware_dir),
                load_model_shape(a.model));
  fmt::print(
      "trace {}: {} requests, {} steps, {} tokens; device {}; timing: decode steps after {} "
      "warm-up request(s)\ncost model: {}\n",
      a.trace, trace.requests(), trace.steps.size(), trace.tokens(), a.device, a.warmup, cost.note);
  fmt::print(
      "columns: hit = expert uses found in a GPU slot; served = hits and waits for a prefetch in "
      "flight (no demand copy); the simulator assumes every copy lands before the next layer, so "
      "its hit rate is to be read against the measured served rate on a GPU; diff = simulated - "
      "measured\n");
  nlohmann::json js = {{"trace", a.trace},
                       {"model", a.model},
                       {"device", a.device},
                       {"cost_model", cost.note},
                       {"checks", nlohmann::json::array()}};
  std::vector<CheckResult> results;
  for (size_t i = 0; i < configs.size(); ++i) {
    const std::string& name = a.check[i];
    results.push_back(check_config(*model, trace, name, configs[i], cost, o));
    fmt::print("{}\n", format_check_line(results.back()));
    std::fflush(stdout);
    js["checks"].push_back(check_json(results.back()));
  }
  const auto def = std::find_if(results.begin(), results.end(),
                                [](const CheckResult& r) { return r.name == "default"; });
  if (def != results.end())
    for (const CheckResult& r : results) {
      if (r.name == "default") continue;
      const double x = def->decode_tok_s > 0 ? r.decode_tok_s / def->decode_tok_s : 0;
      const double sx = def->sim_decode_tok_s > 0 ? r.sim_decode_tok_s / def->sim_decode_tok_s : 0;
      fmt::print(
          "== measured against default: {} {:.1f} tok/s vs default {:.1f} tok/s ({:.2f}x; "
          "simulated {:.2f}x)\n",
          r.name, r.decode_tok_s, def->decode_tok_s, x, sx);
      js["against_default"].push_back(
          {{"name", r.name}, {"measured_ratio", x}, {"simulated_ratio", sx}});
    }
  if (!a.json.empty()) write_text(a.json, js.dump(2) + "\n", "--json");
}

void run_tune(const TuneArgs& a) {
  if (a.hardware == "calibrate")
    fail(ErrorKind::kInvalidArgument,
         "--hardware calibrate: only with --check (the ranking uses a hardware profile)");
  const RoutingTrace trace = read_trace_file(a.trace);
  const ModelShape shape = load_model_shape(a.model);
  TuneOptions o;
  const std::string dir = a.hardware_dir.empty() ? default_hardware_dir() : a.hardware_dir;
  o.hardware = load_hardware_profile(a.hardware, dir);
  if (!a.vram_budget.empty()) o.vram_budget = parse_bytes(a.vram_budget, "--vram-budget");
  if (!a.host_budget.empty()) o.host_budget = parse_bytes(a.host_budget, "--host-budget");
  o.gpu_slots = a.slots;
  o.context = a.ctx;
  const auto t0 = std::chrono::steady_clock::now();
  const TuneReport r = tune(trace, shape, o);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print("trace {}: {} requests, {} steps, {} tokens{}\n", a.trace, trace.requests(),
             trace.steps.size(), trace.tokens(), trace.header.truncated ? " (truncated)" : "");
  fmt::print("hardware: {}", o.hardware.describe());
  fmt::print("cost model: {}\nGPU slots: {}\n", r.cost.describe(), r.slots_note);
  if (r.host_slots > 0) fmt::print("host RAM: {} expert slots over NVMe\n", r.host_slots);
  fmt::print("{} candidates replayed in {:.1f} s\n{}", r.rows.size(), secs,
             format_tune_table(r, size_t(a.rows)));
  fmt::print(
      "columns: hit% = expert uses found resident in a GPU slot; served% = hits and waits for a "
      "prefetch (no demand copy); PCIe/t = bytes copied per token; decode/s and prefill/s = "
      "predicted tokens per second; prec/recall = the predictor's\n");

  std::string curve =
      fmt::format("hit rate against GPU cache size (no prefetch, global slots):\n{:>12}", "slots");
  for (int x : r.curves.front().sizes) curve += fmt::format(" {:>6}", x);
  for (const TuneReport::Curve& c : r.curves) {
    curve += fmt::format("\n{:>12}", c.policy);
    for (double h : c.hit_rate) curve += fmt::format(" {:>5.1f}%", 100 * h);
  }
  fmt::print("{}\n", curve);
  const std::string stem = std::filesystem::path(a.out).replace_extension().string();
  const std::string hot_path = a.hot_out.empty() ? stem + ".hotset" : a.hot_out;
  const std::string plot = a.plot.empty() ? stem + ".svg" : a.plot;
  const TuneCandidate& best = r.rows.front().candidate;
  if (best.hot > 0) write_text(hot_path, format_hot_set(r.hot_set), "--hot-set-out");
  const OffloadConfig cfg = candidate_config(best, o, best.hot > 0 ? hot_path : "");
  const std::string header = fmt::format(
      "coldstream offload configuration written by `coldstream tune` on {}\nmodel {}, trace {} "
      "({} requests, {} tokens), hardware profile {}\n{}",
      utc_now(), a.model, a.trace, trace.requests(), trace.tokens(), o.hardware.origin,
      r.slots_note);
  const std::string text = format_tuned_config(r, cfg, header);
  OffloadConfig check;
  parse_offload_config(text, a.out, check);  // what we write must load
  write_text(a.out, text, "--out");
  write_text(plot, format_curves_svg(r), "--plot");
  fmt::print("wrote {} (best configuration){}, {} (hit rate against cache size)\n", a.out,
             best.hot > 0 ? fmt::format(", {} (hot set of {} experts)", hot_path, r.hot_set.size())
                          : std::string(),
             plot);
}

}  // namespace

void register_tune(CLI::App& app) {
  auto a = std::make_shared<TuneArgs>();
  CLI::App* cmd = app.add_subcommand(
      "tune",
      "Replay a routing trace through every candidate offload configuration and write the best "
      "(TOML), its hot set and a hit-rate plot");
  cmd->add_option("--model,-m", a->model, "The traced model (.cst, directory or synth shape)")
      ->required();
  cmd->add_option("--trace", a->trace, "Routing trace from `coldstream trace`")->required();
  cmd->add_option("--hardware", a->hardware,
                  "Hardware profile: a name in configs/hardware (rtx3090, rtx4090, rtx5090, "
                  "rtx6000ada, h100, h200) or a TOML file; with --check also 'calibrate' (this "
                  "machine's measured rates: the default there)")
      ->capture_default_str();
  cmd->add_option("--hardware-dir", a->hardware_dir, "Directory of hardware profiles");
  cmd->add_option("--vram-budget", a->vram_budget,
                  "GPU memory for the runtime (default: the "
                  "profile's)");
  cmd->add_option("--host-budget", a->host_budget, "Host RAM for experts (default: all)");
  cmd->add_option("--slots", a->slots, "Exactly this many GPU expert slots (overrides budgets)");
  cmd->add_option("--ctx", a->ctx, "KV cache tokens the budget must hold")->capture_default_str();
  cmd->add_option("--out,-o", a->out, "Best configuration (TOML)")->capture_default_str();
  cmd->add_option("--hot-set-out", a->hot_out, "Hot-set profile (default: OUT with .hotset)");
  cmd->add_option("--plot", a->plot, "SVG plot (default: OUT with .svg)");
  cmd->add_option("--rows", a->rows, "Table rows printed")->capture_default_str();
  cmd->add_option("--check", a->check,
                  "Measure instead of tuning: replay the trace with this configuration (TOML, or "
                  "'default') and run the model teacher-forced on it; repeatable");
  cmd->add_option("--device", a->device, "--check: where the model runs (cuda, cuda:N, cpu)")
      ->capture_default_str();
  cmd->add_option("--warmup", a->warmup,
                  "--check: leading requests not timed (and used to calibrate the cost model)")
      ->capture_default_str();
  cmd->add_option("--json", a->json, "--check: also write the results as JSON");
  cmd->callback([a, cmd] {
    a->hardware_given = cmd->count("--hardware") > 0;
    if (a->check.empty())
      run_tune(*a);
    else
      run_check(*a);
  });
}

}  // namespace cs::cli
