// `coldstream chat` setup: flags, the optional --config TOML, the default model, the banner.
#include <fmt/format.h>
#include <unistd.h>

#include <toml++/toml.h>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/cli_common.h"
#include "apps/cmd_chat.h"
#include "common/error.h"
#include "runtime/engine/session.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cs::cli {
namespace {

namespace fs = std::filesystem;

bool flag_set(const ChatArgs& a, const char* name) {
  for (const auto& f : a.set_flags)
    if (f == name) return true;
  return false;
}

// [chat] and [sampling] of a TOML config; command-line flags win. Unknown keys in these tables
// are errors; other tables belong to other parts of coldstream (offload, devices).
void apply_config(ChatArgs& a) {
  const std::string& file = a.offload->config_file;
  if (file.empty()) return;
  toml::table t;
  try {
    t = toml::parse_file(file);
  } catch (const toml::parse_error& e) {
    fail(ErrorKind::kBadFile, "{}: {} (line {})", file, e.description(), e.source().begin.line);
  }
  auto check_keys = [&](const char* table, std::initializer_list<const char*> keys) {
    const toml::table* tab = t[table].as_table();
    if (!tab) return;
    for (const auto& [k, v] : *tab) {
      bool known = false;
      for (const char* kk : keys) known |= k.str() == kk;
      if (!known)
        fail(ErrorKind::kBadFile, "{}: unknown key '{}.{}' (expected one of: {})", file, table,
             k.str(), fmt::join(keys, ", "));
    }
  };
  check_keys("chat", {"model", "system", "think", "max_tokens", "context", "color"});
  check_keys("sampling",
             {"temperature", "top_k", "top_p", "min_p", "repetition_penalty", "seed", "greedy"});
  auto get = [&](const char* table, const char* key, const char* flag, auto* dst) {
    using T = std::remove_pointer_t<decltype(dst)>;
    const toml::node* n = t[table][key].node();
    if (!n || flag_set(a, flag)) return;
    std::optional<T> v;
    if constexpr (std::is_same_v<T, std::string>)
      v = n->value<std::string>();
    else if constexpr (std::is_same_v<T, bool>)
      v = n->value<bool>();
    else if constexpr (std::is_floating_point_v<T>)
      v = n->value<double>() ? std::optional<T>(T(*n->value<double>())) : std::nullopt;
    else
      v = n->value<int64_t>() ? std::optional<T>(T(*n->value<int64_t>())) : std::nullopt;
    if (!v) fail(ErrorKind::kBadFile, "{}: '{}.{}' has the wrong type", file, table, key);
    *dst = *v;
  };
  get("chat", "model", "--model", &a.model);
  get("chat", "system", "--system", &a.system);
  bool think = !a.no_think;
  get("chat", "think", "--no-think", &think);
  a.no_think = !think;
  get("chat", "max_tokens", "--max-tokens", &a.max_tokens);
  get("chat", "context", "--ctx", &a.ctx);
  get("chat", "color", "--color", &a.color);
  get("sampling", "temperature", "--temperature", &a.temperature);
  get("sampling", "top_k", "--top-k", &a.top_k);
  get("sampling", "top_p", "--top-p", &a.top_p);
  get("sampling", "min_p", "--min-p", &a.min_p);
  get("sampling", "repetition_penalty", "--repetition-penalty", &a.repetition_penalty);
  get("sampling", "seed", "--seed", &a.seed);
  get("sampling", "greedy", "--greedy", &a.greedy);
}

std::string human_count(double n) {
  if (n >= 1e9) return fmt::format("{:.1f}B", n / 1e9);
  if (n >= 1e6) return fmt::format("{:.1f}M", n / 1e6);
  if (n >= 1e3) return fmt::format("{:.1f}K", n / 1e3);
  return fmt::format("{:.0f}", n);
}

int run_chat(ChatArgs a, const std::string& argv0) {
  apply_config(a);
  if (a.color != "auto" && a.color != "always" && a.color != "never")
    fail(ErrorKind::kInvalidArgument, "--color: '{}' (expected auto, always or never)", a.color);
  if (a.model.empty()) a.model = find_default_model(argv0);
  auto model = Model::load(a.model);
  const Tokenizer* tok = model->tokenizer();
  if (!tok)
    fail(ErrorKind::kNotFound,
         "{}: the model has no tokenizer (tokenizer.json or tokenizer.model); chat needs one",
         a.model);
  if (tok->vocab_size() > model->config().vocab_size)
    fail(ErrorKind::kBadFile,
         "{}: the tokenizer has {} tokens but the model's vocabulary (vocab_size) is {}", a.model,
         tok->vocab_size(), model->config().vocab_size);
  // --ctx (device.context) wins over [chat] context, which wins over [device] context.
  SessionRuntime rt(*model, a.offload->runtime(a.device), flag_set(a, "--ctx") ? 0 : a.ctx);
  ChatOptions co;
  co.system_prompt = a.system;
  co.thinking = !a.no_think;
  co.max_reply_tokens = a.max_tokens;
  co.ignore_stop_tokens = a.ignore_eos;
  co.sampling.greedy = a.greedy;
  co.sampling.temperature = a.temperature;
  co.sampling.top_k = a.top_k;
  co.sampling.top_p = a.top_p;
  co.sampling.min_p = a.min_p;
  co.sampling.repetition_penalty = a.repetition_penalty;
  co.sampling.seed = a.seed;
  // The template from the tokenizer already loaded with the model (no second load).
  ChatSession chat(rt.session(), *tok,
                   choose_chat_template(tok->info(), model->config().model_type), co,
                   model->config().eos_token_ids);
  return run_chat_repl(a, *model, chat, rt);
}

}  // namespace

std::string find_default_model(const std::string& argv0) {
  std::vector<fs::path> roots;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) exe = fs::absolute(argv0, ec);
  const fs::path bin = exe.parent_path();
  // build/apps/coldstream -> the source tree; bin/coldstream -> the install prefix.
  for (const fs::path& r : {bin / "..", bin / ".." / "..", bin / ".." / "share" / "coldstream"})
    roots.push_back(r.lexically_normal());
  std::vector<std::string> tried;
  for (const fs::path& r : roots)
    for (const char* suffix : {".cst", ""}) {
      const fs::path p = r / "models" / (std::string(kDefaultModel) + suffix);
      if (fs::exists(p)) return p.string();
      tried.push_back(p.string());
    }
  fail(ErrorKind::kNotFound,
       "no --model given and the default model is not here (looked for {}); pass --model PATH "
       "(a Hugging Face directory with a tokenizer)",
       fmt::join(tried, ", "));
}

std::string banner(const ChatArgs& a, const Model& model, const ChatSession& chat,
                   const SessionRuntime& rt) {
  const ModelConfig& c = model.config();
  const std::string& description = model.description();
  double params = double(c.vocab_size) * c.hidden_size * (c.tie_word_embeddings ? 1 : 2);
  const double attn = double(c.hidden_size) * (2.0 * c.q_dim() + 2.0 * c.kv_dim());
  const double expert = 3.0 * c.hidden_size * c.moe_intermediate_size;
  for (int l = 0; l < c.n_layers; ++l)
    params += attn + (c.is_moe_layer(l) ? expert * c.n_experts + double(c.n_experts) * c.hidden_size
                                        : 3.0 * c.hidden_size * c.intermediate_size);
  const Tokenizer* tok = model.tokenizer();
  std::string s = fmt::format("coldstream chat: {}\n", fs::path(a.model).filename().string());
  if (!description.empty()) s += description + "\n";
  s += fmt::format("{}: {} layers, {} experts ({} active), {} parameters; context {} tokens\n",
                   c.model_type, c.n_layers, c.n_experts, c.n_experts_per_tok, human_count(params),
                   chat.context_size());
  s += fmt::format("tokenizer: {} ({} tokens); template: {}{}", tok->kind(), tok->vocab_size(),
                   chat.chat_template().name(),
                   chat.chat_template().supports_thinking()
                       ? (chat.options().thinking ? ", thinking on" : ", thinking off")
                       : "");
  s += "\n" + rt.describe();
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

void register_chat(CLI::App& app) {
  auto a = std::make_shared<ChatArgs>();
  auto argv0 = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("chat",
                                     "Chat with a model (a REPL; scripted when stdin is "
                                     "not a terminal)");
  cmd->add_option(
      "--model,-m", a->model,
      fmt::format("Model directory (default: models/{} of this installation)", kDefaultModel));
  cmd->add_option("--system", a->system, "System prompt");
  cmd->add_flag("--no-think", a->no_think, "Qwen3: answer without reasoning");
  cmd->add_option("--max-tokens,-n", a->max_tokens, "Most tokens per reply")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", a->temperature, "Sampling temperature (0: greedy)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", a->top_k, "Keep the k most likely tokens (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", a->top_p, "Nucleus sampling threshold (1: off)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--min-p", a->min_p, "Drop tokens below min-p times the most likely (0: off)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--repetition-penalty", a->repetition_penalty,
                  "Penalise tokens already in the context (1: off)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a->seed, "Random seed")->capture_default_str();
  cmd->add_flag("--greedy", a->greedy, "Always take the most likely token");
  cmd->add_option("--color", a->color, "auto, always or never")->capture_default_str();
  cmd->add_flag("--hide-reasoning", a->hide_reasoning, "Do not print the model's reasoning");
  cmd->add_flag("--no-history", a->no_history, "Do not read or write ~/.coldstream_history");
  cmd->add_flag("--ignore-eos", a->ignore_eos,
                "Keep generating past stop tokens until --max-tokens (benchmarks, tests)");
  add_device_option(cmd, a->device);
  // --config (-c), --ctx and the offload flags: one file and one set of names for every command.
  add_offload_flags(cmd, a->offload);
  cmd->callback([a, argv0, cmd] {
    for (const char* f :
         {"--model", "--system", "--no-think", "--max-tokens", "--ctx", "--temperature", "--top-k",
          "--top-p", "--min-p", "--repetition-penalty", "--seed", "--greedy", "--color"})
      if (cmd->count(f) > 0) a->set_flags.push_back(f);
    const int rc = run_chat(*a, *argv0);
    if (rc != 0) std::exit(rc);
  });
  *argv0 = "coldstream";
}

}  // namespace cs::cli
