// `coldstream perplexity`: how well a model predicts a text, the standard check of a quantization.
// The window definition is in runtime/eval/perplexity.h; it matches tools/demo/train.py.
#include <fmt/format.h>

#include "apps/cli_common.h"
#include "apps/eval_input.h"
#include "apps/progress.h"
#include "common/error.h"
#include "runtime/eval/perplexity.h"

namespace cs::cli {
namespace {

struct PerplexityArgs {
  std::string model, file, ids_file, device = "auto";
  int ctx = 0, stride = 0;
  int64_t max_tokens = 0;
  bool json = false;
};

void run_perplexity(const PerplexityArgs& a) {
  auto model = Model::load(a.model);
  const int ctx = resolve_eval_ctx(model->config(), a.ctx);
  const std::vector<int32_t> ids = load_eval_tokens(*model, a.file, a.ids_file, a.max_tokens);
  auto backend = make_backend(a.device);
  SessionOptions so;
  so.transformer.n_ctx = ctx;
  Session session(*model, *backend, so);
  PerplexityOptions opt;
  opt.ctx = ctx;
  opt.stride = a.stride;
  int64_t total = 0;
  for (const PerplexityWindow& w :
       perplexity_windows(int64_t(ids.size()), ctx, a.stride > 0 ? a.stride : ctx))
    total += w.end - w.score_from;
  ProgressBar bar("perplexity", total, "tokens");
  PerplexityHooks hooks;
  hooks.on_progress = [&](const PerplexityResult& r, int64_t) {
    bar.update(r.predicted, fmt::format("ppl {:.3f}", r.perplexity()));
    return true;
  };
  const PerplexityResult r = evaluate_perplexity(session, ids, opt, hooks);
  bar.finish(fmt::format("ppl {:.3f}", r.perplexity()));
  const int stride = a.stride > 0 ? a.stride : ctx;
  if (a.json) {
    fmt::print(
        "{{\"perplexity\": {:.6f}, \"mean_nll\": {:.6f}, \"predicted_tokens\": {}, \"windows\": "
        "{}, \"ctx\": {}, \"stride\": {}, \"tokens\": {}}}\n",
        r.perplexity(), r.mean_nll(), r.predicted, r.windows, ctx, stride, ids.size());
  } else {
    fmt::print(
        "perplexity {:.4f} (mean NLL {:.5f} nats over {} predicted tokens; {} window{} of {}"
        "{})\n",
        r.perplexity(), r.mean_nll(), r.predicted, r.windows, r.windows == 1 ? "" : "s", ctx,
        stride == ctx ? ", not overlapping" : fmt::format(", stride {}", stride));
  }
}

}  // namespace

int resolve_eval_ctx(const ModelConfig& c, int requested) {
  const int max_pos = c.max_position_embeddings > 0 ? c.max_position_embeddings : 4096;
  if (requested == 0) return std::min(512, max_pos);
  if (requested < 2)
    fail(ErrorKind::kInvalidArgument, "--ctx: must be at least 2, got {}", requested);
  if (requested > max_pos)
    fail(ErrorKind::kInvalidArgument,
         "--ctx: {} is longer than the model's context (max_position_embeddings {})", requested,
         max_pos);
  return requested;
}

void add_eval_input_options(CLI::App* cmd, std::string& model, std::string& file,
                            std::string& ids_file, int& ctx, int64_t& max_tokens) {
  cmd->add_option("--model,-m", model, "Model: a Hugging Face directory or a packed .cst file")
      ->required();
  cmd->add_option("--file,-f", file, "Text file, tokenized with the model's tokenizer");
  cmd->add_option("--ids-file", ids_file,
                  "File of token ids (whitespace- or comma-separated), instead of --file");
  cmd->add_option("--ctx", ctx,
                  "Tokens per window; each window runs from an empty context (default: 512, or "
                  "the model's context if shorter)");
  cmd->add_option("--max-tokens", max_tokens, "Evaluate only the first N tokens (0 = all)")
      ->check(CLI::NonNegativeNumber);
}

void register_perplexity(CLI::App& app) {
  auto a = std::make_shared<PerplexityArgs>();
  CLI::App* cmd = app.add_subcommand(
      "perplexity",
      "Perplexity of a text: windows of --ctx tokens, each scored on its positions 1..n-1 from an "
      "empty context (the definition of tools/demo/train.py)");
  add_eval_input_options(cmd, a->model, a->file, a->ids_file, a->ctx, a->max_tokens);
  add_device_option(cmd, a->device);
  cmd->add_option("--stride", a->stride,
                  "Start a window every N tokens (0 = --ctx: no overlap); a smaller stride scores "
                  "each token with more context, at ctx/stride times the cost")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", a->json, "Print the result as one JSON object");
  cmd->callback([a] { run_perplexity(*a); });
}

}  // namespace cs::cli
