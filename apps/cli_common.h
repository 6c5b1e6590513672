// Helpers shared by the subcommands of `coldstream`.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "runtime/model/config.h"

namespace cs {
class Tokenizer;
struct ChatTemplate;
}  // namespace cs

namespace cs::cli {

// The items of a comma-separated flag value, empty ones included ("" is one empty item).
std::vector<std::string> split_commas(const std::string& text);

// Parses "1,2,3" into token ids; throws cs::Error naming `flag` on bad input.
std::vector<int32_t> parse_ids(const std::string& text, const std::string& flag);

// The --device option of a subcommand ("auto" by default).
void add_device_option(CLI::App* cmd, std::string& device);
// The backend for a --device value: cpu, cuda, cuda:N or auto. "auto" takes GPU 0 when one is
// usable and otherwise the CPU, saying so on stderr; "cuda" without a GPU is an error.
std::unique_ptr<Backend> make_backend(const std::string& device = "auto");

// The tokenizer named by --model DIR or --tokenizer FILE (exactly one must be given).
std::unique_ptr<Tokenizer> load_cli_tokenizer(const std::string& model,
                                              const std::string& tokenizer);

// The chat template of a model directory: its tokenizer's template text, else its model type.
ChatTemplate chat_template_for_model(const std::string& model_dir);

// Each subcommand registers itself: adds its options and sets its callback.
void register_generate(CLI::App& app);
void register_logits(CLI::App& app);
void register_perplexity(CLI::App& app);
void register_routing_stats(CLI::App& app);

// Options shared by the evaluation commands (perplexity, routing-stats).
void add_eval_input_options(CLI::App* cmd, std::string& model, std::string& file,
                            std::string& ids_file, int& ctx, int64_t& max_tokens);
// The evaluation window: `requested` (--ctx) or, when 0, 512 capped by the model's context.
int resolve_eval_ctx(const ModelConfig& c, int requested);
void register_config(CLI::App& app);
void register_bench_offload(CLI::App& app);
void register_bench(CLI::App& app);
void register_convert(CLI::App& app);
void register_info(CLI::App& app);
void register_synth(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_bench_tokenizer(CLI::App& app);
void register_template(CLI::App& app);
void register_chat(CLI::App& app);
void register_trace(CLI::App& app);
void register_tune(CLI::App& app);
void register_plan(CLI::App& app);

}  // namespace cs::cli
