// `coldstream template`: prints the prompt a conversation renders to, exactly as the model sees
// it (the same text transformers' apply_chat_template produces).
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/cli_common.h"
#include "common/error.h"
#include "runtime/chat/template.h"
#include "runtime/model/config.h"
#include "runtime/model/model.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cs::cli {
namespace {

struct TemplateArgs {
  std::string model, messages;
  bool no_think = false, no_generation_prompt = false, verbose = false;
};

void run_template(const TemplateArgs& a) {
  std::ifstream in(a.messages);
  if (!in) fail(ErrorKind::kNotFound, "--messages {}: cannot open file", a.messages);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::kBadFile, "--messages {}: malformed JSON: {}", a.messages, e.what());
  }
  const std::vector<ChatMessage> messages = messages_from_json(j, a.messages);
  const ChatTemplate t = chat_template_for_model(a.model);
  if (a.verbose) fmt::print(stderr, "template: {} ({})\n", t.name(), t.reason);
  const std::string text = t.render(messages, !a.no_generation_prompt, !a.no_think);
  std::fwrite(text.data(), 1, text.size(), stdout);
}

}  // namespace

ChatTemplate chat_template_for_model(const std::string& model_dir) {
  namespace fs = std::filesystem;
  std::string model_type;
  std::unique_ptr<Tokenizer> tok = load_model_tokenizer(model_dir, &model_type);
  TokenizerInfo info;
  if (tok) {
    info = tok->info();
  } else {
    // A directory with only tokenizer_config.json, or a packed file's model type, still has one.
    info.origin = fs::is_directory(model_dir)
                      ? (fs::path(model_dir) / "tokenizer_config.json").string()
                      : model_dir;
    if (!fs::exists(info.origin) && model_type.empty())
      fail(ErrorKind::kNotFound,
           "--model {}: no config.json, tokenizer.json, tokenizer.model or "
           "tokenizer_config.json",
           model_dir);
  }
  return choose_chat_template(info, model_type);
}

void register_template(CLI::App& app) {
  auto a = std::make_shared<TemplateArgs>();
  CLI::App* cmd =
      app.add_subcommand("template", "Print the prompt a conversation renders to (chat template)");
  cmd->add_option("--model,-m", a->model,
                  "Model directory (tokenizer_config.json, config.json) or packed .cst file")
      ->required();
  cmd->add_option("--messages", a->messages,
                  "JSON file: [{\"role\": \"user\", \"content\": \"...\"}, ...]")
      ->required();
  cmd->add_flag("--no-think", a->no_think, "Qwen3: ask for an answer without reasoning");
  cmd->add_flag("--no-generation-prompt", a->no_generation_prompt,
                "Do not end with the assistant's turn opening");
  cmd->add_flag("--verbose,-v", a->verbose, "Say on stderr which template was chosen and why");
  cmd->callback([a] { run_template(*a); });
}

}  // namespace cs::cli
