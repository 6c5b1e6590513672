// `coldstream routing-stats`: how a MoE model routes a text: per-layer routing entropy, expert
// reuse distance, LRU hit rates and per-request working set (see runtime/eval/routing_stats.h).
// Requests are the windows `coldstream perplexity` uses, each from an empty context.
#include <fmt/format.h>

#include <cmath>
#include <fstream>

#include "apps/cli_common.h"
#include "apps/eval_input.h"
#include "apps/progress.h"
#include "apps/routing_report.h"
#include "common/error.h"
#include "runtime/eval/perplexity.h"
#include "runtime/eval/routing_stats.h"

namespace cs::cli {

void print_routing_report(const RoutingStats::Report& r, double ppl) {
  fmt::print("{} requests, {} tokens, {} experts per layer, top-{}{}\n", r.requests, r.tokens,
             r.n_experts, r.k, ppl > 0 ? fmt::format("; perplexity {:.3f}", ppl) : "");
  std::string caps;
  if (!r.layers.empty())
    for (int c : r.layers[0].lru_capacities)
      caps += fmt::format(" {:>6}", fmt::format("LRU@{}", c));
  fmt::print("{:>5} {:>8} {:>6} {:>6} {:>6} {:>7} {:>7} {:>8}{}\n", "layer", "entropy", "max",
             "min", "unused", "reuse1", "mean_rd", "work_set", caps);
  for (const RoutingStats::Layer& l : r.layers) {
    const double reuse1 = l.selections ? double(l.reuse_histogram[0]) / double(l.selections) : 0;
    std::string hits;
    for (double h : l.lru_hit_rate) hits += fmt::format(" {:>6.3f}", h);
    fmt::print("{:>5} {:>8.3f} {:>5.2f}x {:>5.3f}x {:>6} {:>7.3f} {:>7.1f} {:>8.1f}{}\n", l.layer,
               l.entropy_bits, l.max_load_x_uniform, l.min_load_x_uniform, l.experts_unused, reuse1,
               l.mean_reuse_distance, l.mean_working_set, hits);
  }
  fmt::print(
      "mean entropy {:.3f} of {:.3f} bits; mean working set {:.1f} of {} experts per layer\n",
      r.mean_entropy_bits(), std::log2(double(r.n_experts)), r.mean_working_set(), r.n_experts);
  std::string growth;
  for (size_t j = 0; j < r.growth_tokens.size(); ++j)
    growth += fmt::format(" {}:{:.1f}", r.growth_tokens[j], r.growth_experts[j]);
  fmt::print("working set growth (tokens:experts per layer):{}\n", growth);
  fmt::print(
      "columns: entropy in bits of the expert load; max/min load as a multiple of uniform; reuse1 "
      "= share of selections whose expert the previous token also used; mean_rd = mean tokens "
      "between uses within a request; work_set = distinct experts per request; LRU@C = hit rate "
      "of a per-layer LRU cache of C experts\n");
}

namespace {

struct RoutingArgs {
  std::string model, file, ids_file, json, device = "auto";
  int ctx = 0;
  int64_t max_tokens = 0;
};

void run_routing_stats(const RoutingArgs& a) {
  auto model = Model::load(a.model);
  const ModelConfig& c = model->config();
  if (c.n_experts < 2)
    fail(ErrorKind::kUnsupported, "--model {}: not a mixture-of-experts model", a.model);
  const int ctx = resolve_eval_ctx(c, a.ctx);
  const std::vector<int32_t> ids = load_eval_tokens(*model, a.file, a.ids_file, a.max_tokens);
  auto backend = make_backend(a.device);
  SessionOptions so;
  so.transformer.n_ctx = ctx;
  Session session(*model, *backend, so);
  RoutingStats stats(c.n_layers, c.n_experts, c.n_experts_per_tok);
  session.transformer().set_routing_observer(stats.observer());
  PerplexityOptions opt;
  opt.ctx = ctx;
  ProgressBar bar("routing-stats", int64_t(ids.size()), "tokens");
  PerplexityHooks hooks;
  hooks.on_window = [&](int, const PerplexityWindow&) { stats.begin_request(); };
  hooks.on_progress = [&](const PerplexityResult& r, int64_t) {
    bar.update(r.predicted + r.windows);
    return true;
  };
  const PerplexityResult pr = evaluate_perplexity(session, ids, opt, hooks);
  bar.finish();
  session.transformer().set_routing_observer({});
  const RoutingStats::Report r = stats.report();
  print_routing_report(r, pr.perplexity());
  if (!a.json.empty()) {
    nlohmann::json j = to_json(r);
    j["model"] = a.model;
    j["ctx"] = ctx;
    j["perplexity"] = pr.perplexity();
    std::ofstream out(a.json);
    if (!out) fail(ErrorKind::kIo, "--json: cannot write '{}'", a.json);
    out << j.dump(1) << "\n";
    if (!out) fail(ErrorKind::kIo, "--json: writing '{}' failed", a.json);
  }
}

}  // namespace

void register_routing_stats(CLI::App& app) {
  auto a = std::make_shared<RoutingArgs>();
  CLI::App* cmd = app.add_subcommand(
      "routing-stats",
      "Per-layer routing entropy, expert reuse distance, LRU hit rates and per-request working "
      "set of a MoE model over a text (requests = windows of --ctx tokens)");
  add_eval_input_options(cmd, a->model, a->file, a->ids_file, a->ctx, a->max_tokens);
  add_device_option(cmd, a->device);
  cmd->add_option("--json", a->json, "Also write the full report (with per-expert loads) here");
  cmd->callback([a] { run_routing_stats(*a); });
}

}  // namespace cs::cli
