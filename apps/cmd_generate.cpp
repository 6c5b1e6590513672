// `coldstream generate` and `coldstream logits`: token-level access to a model.
#include <fmt/format.h>

#include <cmath>
#include <cstdio>

#include "apps/cli_common.h"
#include "apps/offload_cli.h"
#include "runtime/engine/session.h"

namespace cs::cli {
namespace {

struct GenerateArgs {
  std::string model, ids, device = "auto";
  int max_tokens = 16;
  bool greedy = false;
  float temperature = 0.7f;
  int top_k = 20;
  float top_p = 0.8f;
  uint64_t seed = 0;
  std::shared_ptr<OffloadFlags> offload = std::make_shared<OffloadFlags>();
};

// The session's backend and expert executor: resident, or the offload engine when the offload
// flags or --config ask for it; the offload counters go to stderr at the end.
struct Runner {
  std::unique_ptr<SessionRuntime> rt;
  Session* session = nullptr;
  Runner(const Model& model, const std::string& device, const OffloadFlags& flags)
      : rt(std::make_unique<SessionRuntime>(model, flags.runtime(device))),
        session(&rt->session()) {}
  ~Runner() {
    if (const OffloadTelemetry* t = rt->telemetry()) fmt::print(stderr, "{}", t->summary());
  }
};

void run_generate(const GenerateArgs& a) {
  auto model = Model::load(a.model);
  Runner runner(*model, a.device, *a.offload);
  Session& session = *runner.session;
  GenerateOptions opt;
  opt.max_tokens = a.max_tokens;
  opt.sampling.greedy = a.greedy;
  opt.sampling.temperature = a.temperature;
  opt.sampling.top_k = a.top_k;
  opt.sampling.top_p = a.top_p;
  opt.sampling.seed = a.seed;
  opt.stop_tokens = model->config().eos_token_ids;
  const std::vector<int32_t> prompt = parse_ids(a.ids, "--ids");
  bool first = true;
  session.generate(prompt, opt, [&](int32_t t) {
    fmt::print("{}{}", first ? "" : ",", t);
    std::fflush(stdout);
    first = false;
    return true;
  });
  fmt::print("\n");
}

struct LogitsArgs {
  std::string model, ids, device = "auto";
  std::shared_ptr<OffloadFlags> offload = std::make_shared<OffloadFlags>();
};

void run_logits(const LogitsArgs& a) {
  auto model = Model::load(a.model);
  Runner runner(*model, a.device, *a.offload);
  Session& session = *runner.session;
  const std::vector<int32_t> ids = parse_ids(a.ids, "--ids");
  const std::vector<float> all = session.eval_all(ids);
  const size_t V = size_t(model->config().vocab_size);
  // One JSON array of per-position rows; %.9g round-trips a float exactly.
  std::string out = "[";
  for (size_t r = 0; r < ids.size(); ++r) {
    out += r ? ",\n[" : "[";
    for (size_t v = 0; v < V; ++v) {
      const float x = all[r * V + v];
      out += v ? "," : "";
      out += std::isfinite(x) ? fmt::format("{:.9g}", x) : "null";
    }
    out += "]";
  }
  out += "]\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

void register_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate token ids from a prompt of token ids");
  cmd->add_option("--model,-m", a->model, "Model: a Hugging Face directory or a packed .cst file")
      ->required();
  cmd->add_option("--ids", a->ids, "Prompt token ids, comma-separated (e.g. 1,2,3)")->required();
  cmd->add_option("--max-tokens,-n", a->max_tokens, "Tokens to generate")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--greedy", a->greedy, "Always take the most likely token");
  cmd->add_option("--temperature", a->temperature, "Sampling temperature")->capture_default_str();
  cmd->add_option("--top-k", a->top_k, "Keep the k most likely tokens (0 = all)")
      ->capture_default_str();
  cmd->add_option("--top-p", a->top_p, "Nucleus sampling threshold")->capture_default_str();
  cmd->add_option("--seed", a->seed, "Random seed")->capture_default_str();
  add_device_option(cmd, a->device);
  add_offload_flags(cmd, a->offload);
  cmd->callback([a] { run_generate(*a); });
}

void register_logits(CLI::App& app) {
  auto a = std::make_shared<LogitsArgs>();
  CLI::App* cmd =
      app.add_subcommand("logits", "Print the logits of every position as one JSON array of rows");
  cmd->add_option("--model,-m", a->model, "Model: a Hugging Face directory or a packed .cst file")
      ->required();
  cmd->add_option("--ids", a->ids, "Token ids, comma-separated (e.g. 1,2,3)")->required();
  add_device_option(cmd, a->device);
  add_offload_flags(cmd, a->offload);
  cmd->callback([a] { run_logits(*a); });
}

}  // namespace cs::cli
