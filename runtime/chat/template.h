// Chat templates: a conversation -> the prompt text a model was trained on. Implemented natively
// (no Jinja engine) for the families coldstream runs, each byte-equal to transformers'
// apply_chat_template with the model's own template (tests/fixtures/chat):
//   qwen3    ChatML with <think> reasoning (Qwen3, and the SentencePiece demo model)
//   mistral  [INST] ... [/INST] (Mixtral-8x7B-Instruct-v0.1)
// The family is chosen from the template text a tokenizer carries, else from the model type.
//
// Thread-safety: immutable values.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace cs {

struct TokenizerInfo;

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (qwen3 also renders "tool")
  std::string content;
  // The assistant's reasoning, kept apart from the answer (transformers' reasoning_content).
  std::string reasoning;
  bool has_reasoning = false;
};

enum class TemplateFamily { kQwen3, kMistral };

struct ChatTemplate {
  TemplateFamily family = TemplateFamily::kQwen3;
  std::string bos_token;  // mistral: "<s>"
  std::string eos_token;  // mistral: "</s>"
  // Why this family was chosen (shown by `coldstream template --verbose` and the chat banner).
  std::string reason;

  // Renders the conversation. With `add_generation_prompt` the text ends where the assistant's
  // reply begins; `enable_thinking` false asks Qwen3 for an answer without reasoning. Throws
  // cs::Error (kInvalidArgument) for a conversation the template refuses (as its Jinja
  // raise_exception would).
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true,
                     bool enable_thinking = true) const;
  std::string name() const { return family == TemplateFamily::kQwen3 ? "qwen3" : "mistral"; }
  // Whether replies may start with a <think> block.
  bool supports_thinking() const { return family == TemplateFamily::kQwen3; }
};

// Chooses the template for a model: the family whose markers appear in info.chat_template
// ("<|im_start|>" -> qwen3, "[INST]" -> mistral), else the family of `model_type`
// ("qwen3_moe" -> qwen3, "mixtral" -> mistral). Throws cs::Error (kUnsupported) naming
// info.origin when neither says.
ChatTemplate choose_chat_template(const TokenizerInfo& info, std::string_view model_type);

// Messages to and from JSON: [{"role": ..., "content": ..., "reasoning_content": ...}, ...].
// `origin` names the file in errors (a missing role or content, a value that is not a string).
std::vector<ChatMessage> messages_from_json(const nlohmann::json& j, std::string_view origin);
nlohmann::json messages_to_json(const std::vector<ChatMessage>& messages);

}  // namespace cs
