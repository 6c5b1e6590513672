// `coldstream synth`: random-weight models at the exact shapes of real checkpoints (see
// runtime/format/synth.h), as a packed file and optionally its GGUF twin; then it measures the
// routing of a short generation and prints its entropy.
#include <fmt/format.h>

#include "apps/cli_common.h"
#include "apps/progress.h"
#include "common/units.h"
#include "runtime/engine/routing_probe.h"
#include "runtime/format/synth.h"

namespace cs::cli {
namespace {

struct SynthArgs {
  SynthOptions o;
  int probe_tokens = 64;
  bool quiet = false;
};

void run_synth(SynthArgs& a) {
  ProgressBar bar("synth", 0, "bytes", a.quiet);
  a.o.progress = [&](uint64_t d, uint64_t t) { bar.update(int64_t(d), int64_t(t)); };
  const SynthResult r = write_synth(a.o);
  bar.finish(int64_t(r.bytes + r.gguf_bytes));
  fmt::print("wrote {} ({}){}\n", a.o.out, format_bytes(double(r.bytes)),
             a.o.gguf.empty()
                 ? ""
                 : fmt::format(" and {} ({})", a.o.gguf, format_bytes(double(r.gguf_bytes))));
  if (a.probe_tokens <= 0) return;
  auto model = Model::load(a.o.out);
  auto backend = make_backend();
  const int prompt = a.probe_tokens / 2, decode = a.probe_tokens - prompt;
  const RoutingStats st = probe_routing(*model, *backend, prompt, decode + 1, a.o.seed);
  fmt::print(
      "routing over {} tokens: normalized entropy min {:.3f} mean {:.3f}; experts used "
      "per layer min {} of {}; top expert share max {:.3f}; logits {}\n",
      st.tokens, st.min_normalized_entropy(), st.mean_normalized_entropy(), st.min_experts_used(),
      r.config.n_experts,
      [&] {
        double m = 0;
        for (size_t i = 0; i < st.counts.size(); ++i) m = std::max(m, st.top_share(i));
        return m;
      }(),
      st.finite ? "finite" : "NOT FINITE");
}

}  // namespace

void register_synth(CLI::App& app) {
  auto a = std::make_shared<SynthArgs>();
  CLI::App* cmd = app.add_subcommand(
      "synth", "Write a random-weight model at a real checkpoint's shapes (and its GGUF twin)");
  cmd->add_option("--shape", a->o.shape,
                  "qwen3-235b-a22b, qwen3-30b-a3b, mixtral-8x7b (tiny-qwen3, tiny-mixtral for "
                  "tests)")
      ->required();
  cmd->add_option("--layers", a->o.layers, "Keep the first N layers (0 = all)");
  cmd->add_option("--skew", a->o.skew, "Zipf exponent of expert popularity (0 = uniform)");
  cmd->add_option("--seed", a->o.seed, "Random seed")->capture_default_str();
  cmd->add_option("--out", a->o.out, "Packed output file (.cst)")->required();
  cmd->add_option("--gguf", a->o.gguf, "Also write the same weights as this GGUF file");
  cmd->add_flag("--force", a->o.force, "Overwrite existing outputs");
  cmd->add_option("--threads", a->o.threads, "Generator threads (0 = one per core)");
  cmd->add_option("--probe-tokens", a->probe_tokens,
                  "Tokens run after writing to measure routing entropy (0 = skip)")
      ->capture_default_str();
  cmd->add_flag("--quiet,-q", a->quiet, "No progress output");
  cmd->callback([a] { run_synth(*a); });
}

}  // namespace cs::cli
