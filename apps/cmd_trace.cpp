// `coldstream trace`: runs prompts and records how the model routes them (cache/routing_trace.h,
// docs/TRACE.md), then prints the trace's routing statistics (entropy, reuse distance, working
// set per request: the same table as `coldstream routing-stats`) and its predictors' precision.
#include <fmt/format.h>

#include "apps/cli_common.h"
#include "apps/progress.h"
#include "apps/routing_report.h"
#include "common/error.h"
#include "common/units.h"
#include "runtime/eval/trace_io.h"
#include "runtime/eval/trace_recorder.h"

namespace cs::cli {
namespace {

struct TraceArgs {
  std::string model, prompts, out, device = "cpu";
  int max_tokens = 32, ctx = 0, max_batch = 256, lookahead = 2, horizon = 1;
  double threshold = 0.05;
  std::string max_bytes = "256MiB";
};

// Precision and recall of the predictions stored in the trace against the routing that followed.
void print_predictions(const RoutingTrace& t) {
  for (int kind = 0; kind < 2; ++kind) {
    uint64_t predicted = 0, correct = 0, actual = 0;
    for (const TraceStep& s : t.steps) {
      std::vector<std::vector<uint8_t>> pending(t.header.moe_layers.size(),
                                                std::vector<uint8_t>(size_t(t.header.n_experts)));
      std::vector<uint8_t> covered(t.header.moe_layers.size());
      for (size_t i = 0; i < s.layers.size(); ++i) {
        const TraceLayer& l = s.layers[i];
        if (covered[i]) {
          std::vector<uint8_t> seen(size_t(t.header.n_experts));
          for (int32_t e : l.ids)
            if (!seen[size_t(e)]++) {
              ++actual;
              correct += pending[i][size_t(e)];
            }
          for (uint8_t p : pending[i]) predicted += p;
        }
        for (ExpertId id : kind == 0 ? l.pred_lookahead : l.pred_coactivation) {
          const size_t j =
              size_t(std::find(t.header.moe_layers.begin(), t.header.moe_layers.end(), id.layer) -
                     t.header.moe_layers.begin());
          if (j < pending.size()) {
            pending[j][size_t(id.expert)] = 1;
            covered[j] = 1;
          }
        }
      }
    }
    fmt::print("predictor {} (horizon {}, threshold {:g}): precision {:.3f}, recall {:.3f}\n",
               kind == 0 ? "lookahead" : "coactivation", t.header.horizon, t.header.threshold,
               predicted ? double(correct) / double(predicted) : 0.0,
               actual ? double(correct) / double(actual) : 0.0);
  }
}

void run_trace(const TraceArgs& a) {
  auto model = Model::load(a.model);
  const ModelConfig& c = model->config();
  if (c.n_experts < 2)
    fail(ErrorKind::kUnsupported, "--model {}: not a mixture-of-experts model", a.model);
  const auto requests = load_trace_requests(a.prompts, *model, a.max_tokens);
  auto backend = make_backend(a.device);
  if (!backend->host_memory())
    fail(ErrorKind::kUnsupported,
         "--device {}: tracing runs on the CPU (the lookahead routers are read from host memory); "
         "use --device cpu",
         a.device);
  TraceRecorderOptions ro;
  ro.lookahead = a.lookahead;
  ro.horizon = a.horizon;
  ro.threshold = a.threshold;
  ro.max_bytes = parse_bytes(a.max_bytes, "--max-bytes");
  ro.max_batch = a.max_batch;
  TraceRecorder rec(*backend, *model, ro);
  SessionOptions so;
  so.transformer.n_ctx = a.ctx;
  so.transformer.max_batch = a.max_batch;
  Session session(*model, *backend, so, &rec);
  ProgressBar bar("trace", int64_t(requests.size()), "requests");
  run_trace_requests(
      session, *model, requests,
      [&](size_t i) {
        rec.begin_request();
        bar.update(int64_t(i));
        return !rec.full();
      },
      [&](std::span<const int32_t> t) { rec.feed(t); });
  bar.finish();
  const RoutingTrace t = rec.take();
  write_trace_file(a.out, t);
  if (t.header.truncated)
    fmt::print(stderr,
               "coldstream: warning: the trace reached its size cap of {} after {} requests; the "
               "rest was not recorded (raise --max-bytes)\n",
               format_bytes(double(ro.max_bytes)), t.requests());
  fmt::print("wrote {}: {} requests, {} steps, {} tokens, {}\n", a.out, t.requests(),
             t.steps.size(), t.tokens(), format_bytes(double(rec.bytes())));
  print_routing_report(routing_report(t), 0);
  print_predictions(t);
}

}  // namespace

void register_trace(CLI::App& app) {
  auto a = std::make_shared<TraceArgs>();
  CLI::App* cmd = app.add_subcommand(
      "trace",
      "Run prompts and record the routing (experts, router weights, predictions) as a trace for "
      "`coldstream tune`; prints entropy, reuse distance and working set per request");
  cmd->add_option("--model,-m", a->model, "Model (.cst file or Hugging Face directory)")
      ->required();
  cmd->add_option("--prompts", a->prompts,
                  "JSON Lines: {\"prompt\": TEXT} or {\"messages\": [...]}, optional "
                  "\"max_tokens\"")
      ->required();
  cmd->add_option("--out,-o", a->out, "Trace file to write")->required();
  cmd->add_option("--max-tokens", a->max_tokens, "Greedy tokens generated per request")
      ->capture_default_str();
  cmd->add_option("--ctx", a->ctx, "Context length (0: the model's, at most 4096)");
  cmd->add_option("--max-batch", a->max_batch, "Tokens per prefill chunk (a step)")
      ->capture_default_str();
  cmd->add_option("--lookahead", a->lookahead,
                  "Record router logits of this many following MoE layers (the largest "
                  "lookahead horizon `tune` can try)")
      ->capture_default_str();
  cmd->add_option("--horizon", a->horizon, "Horizon of the stored lookahead predictions")
      ->capture_default_str();
  cmd->add_option("--threshold", a->threshold, "Threshold of the stored predictions")
      ->capture_default_str();
  cmd->add_option("--max-bytes", a->max_bytes, "Size cap of the trace (e.g. 64MiB)")
      ->capture_default_str();
  cmd->add_option("--device", a->device, "Backend: cpu (tracing runs on the CPU)")
      ->capture_default_str();
  cmd->callback([a] { run_trace(*a); });
}

}  // namespace cs::cli
