// The `coldstream` command: one binary, one subcommand per job.
#include <fmt/format.h>

#include <cstdio>

#include "apps/cli_common.h"
#include "common/error.h"

int main(int argc, char** argv) {
  CLI::App app{"coldstream: run huge Mixture-of-Experts models on one consumer GPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "coldstream 0.1.0");
  cs::cli::register_generate(app);
  cs::cli::register_logits(app);
  cs::cli::register_perplexity(app);
  cs::cli::register_routing_stats(app);
  cs::cli::register_config(app);
  cs::cli::register_bench_offload(app);
  cs::cli::register_bench(app);
  cs::cli::register_convert(app);
  cs::cli::register_info(app);
  cs::cli::register_synth(app);
  cs::cli::register_tokenize(app);
  cs::cli::register_bench_tokenizer(app);
  cs::cli::register_template(app);
  cs::cli::register_chat(app);
  cs::cli::register_trace(app);
  cs::cli::register_tune(app);
  cs::cli::register_plan(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const cs::Error& e) {
    fmt::print(stderr, "coldstream: error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "coldstream: internal error: {}\n", e.what());
    return 2;
  }
  return 0;
}
