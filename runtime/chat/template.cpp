#include "runtime/chat/template.h"

#include "common/error.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cs {

namespace {

// Python's str.strip / lstrip / rstrip with a set of characters.
std::string_view lstrip(std::string_view s, std::string_view chars) {
  const size_t b = s.find_first_not_of(chars);
  return b == std::string_view::npos ? std::string_view() : s.substr(b);
}
std::string_view rstrip(std::string_view s, std::string_view chars) {
  const size_t e = s.find_last_not_of(chars);
  return e == std::string_view::npos ? std::string_view() : s.substr(0, e + 1);
}
std::string_view strip(std::string_view s, std::string_view chars) {
  return lstrip(rstrip(s, chars), chars);
}
// s.split(sep)[0] and s.split(sep)[-1].
std::string_view split_first(std::string_view s, std::string_view sep) {
  const size_t p = s.find(sep);
  return p == std::string_view::npos ? s : s.substr(0, p);
}
std::string_view split_last(std::string_view s, std::string_view sep) {
  const size_t p = s.rfind(sep);
  return p == std::string_view::npos ? s : s.substr(p + sep.size());
}

// Qwen3's tokenizer_config.json chat template, without tools (the `tools` argument).
std::string render_qwen3(const std::vector<ChatMessage>& ms, bool add_generation_prompt,
                         bool enable_thinking) {
  std::string out;
  const int n = int(ms.size());
  if (ms[0].role == "system") out += "<|im_start|>system\n" + ms[0].content + "<|im_end|>\n";
  // The last user message that is not a tool response: reasoning is kept only after it.
  int last_query = n - 1;
  for (int i = n - 1; i >= 0; --i) {
    const std::string& c = ms[i].content;
    const bool tool_response = c.starts_with("<tool_response>") && c.ends_with("</tool_response>");
    if (ms[i].role == "user" && !tool_response) {
      last_query = i;
      break;
    }
  }
  for (int i = 0; i < n; ++i) {
    const ChatMessage& m = ms[i];
    if (m.role == "user" || (m.role == "system" && i != 0)) {
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    } else if (m.role == "assistant") {
      std::string_view content = m.content, reasoning;
      if (m.has_reasoning) {
        reasoning = m.reasoning;
      } else if (m.content.find("</think>") != std::string::npos) {
        content = lstrip(split_last(m.content, "</think>"), "\n");
        reasoning =
            lstrip(split_last(rstrip(split_first(m.content, "</think>"), "\n"), "<think>"), "\n");
      }
      out += "<|im_start|>assistant\n";
      if (i > last_query && (i == n - 1 || !reasoning.empty())) {
        out += "<think>\n";
        out += strip(reasoning, "\n");
        out += "\n</think>\n\n";
        out += lstrip(content, "\n");
      } else {
        out += content;
      }
      out += "<|im_end|>\n";
    } else if (m.role == "tool") {
      if (i == 0 || ms[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + m.content + "\n</tool_response>";
      if (i == n - 1 || ms[i + 1].role != "tool") out += "<|im_end|>\n";
    }
    // Other roles render nothing, as in the Jinja template.
  }
  if (add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (!enable_thinking) out += "<think>\n\n</think>\n\n";
  }
  return out;
}

// Mixtral-8x7B-Instruct-v0.1's template (the revision with system-message support).
std::string render_mistral(const std::vector<ChatMessage>& ms, const std::string& bos,
                           const std::string& eos) {
  size_t first = 0;
  const std::string* system = nullptr;
  if (ms[0].role == "system") {
    system = &ms[0].content;
    first = 1;
  }
  std::string out = bos;
  for (size_t i = first; i < ms.size(); ++i) {
    const ChatMessage& m = ms[i];
    const size_t k = i - first;
    if ((m.role == "user") != (k % 2 == 0))
      fail(ErrorKind::kInvalidArgument,
           "After the optional system message, conversation roles must alternate "
           "user/assistant/user/assistant/... (message {} is '{}')",
           i, m.role);
    if (m.role == "user") {
      if (k == 0 && system)
        out += " [INST] " + *system + "\n\n" + m.content + " [/INST]";
      else
        out += " [INST] " + m.content + " [/INST]";
    } else if (m.role == "assistant") {
      out += " " + m.content + eos;
    } else {
      fail(ErrorKind::kInvalidArgument,
           "Only user and assistant roles are supported, with the exception of an initial "
           "optional system message! (message {} is '{}')",
           i, m.role);
    }
  }
  return out;
}

}  // namespace

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt, bool enable_thinking) const {
  if (messages.empty())
    fail(ErrorKind::kInvalidArgument, "a chat template needs at least one message");
  if (family == TemplateFamily::kQwen3)
    return render_qwen3(messages, add_generation_prompt, enable_thinking);
  return render_mistral(messages, bos_token, eos_token);
}

ChatTemplate choose_chat_template(const TokenizerInfo& info, std::string_view model_type) {
  ChatTemplate t;
  const std::string& src = info.chat_template;
  if (!src.empty() && src.find("<|im_start|>") != std::string::npos) {
    t.family = TemplateFamily::kQwen3;
    t.reason = fmt::format("the chat template of {} is ChatML", info.origin);
  } else if (!src.empty() && src.find("[INST]") != std::string::npos) {
    t.family = TemplateFamily::kMistral;
    t.reason = fmt::format("the chat template of {} uses [INST]", info.origin);
  } else if (model_type == "qwen3_moe" || model_type == "qwen3") {
    t.family = TemplateFamily::kQwen3;
    t.reason = fmt::format("model type {}{}", model_type,
                           src.empty() ? " (the tokenizer has no chat template)"
                                       : " (the tokenizer's chat template is not one we know)");
  } else if (model_type == "mixtral" || model_type == "mistral") {
    t.family = TemplateFamily::kMistral;
    t.reason = fmt::format("model type {}{}", model_type,
                           src.empty() ? " (the tokenizer has no chat template)"
                                       : " (the tokenizer's chat template is not one we know)");
  } else {
    fail(ErrorKind::kUnsupported,
         "{}: no chat template coldstream knows (expected a ChatML or [INST] template, or a "
         "qwen3_moe or mixtral model)",
         info.origin.empty() ? std::string("tokenizer") : info.origin);
  }
  if (t.family == TemplateFamily::kMistral) {
    t.bos_token = info.bos_token.empty() ? "<s>" : info.bos_token;
    t.eos_token = info.eos_token.empty() ? "</s>" : info.eos_token;
  } else {
    t.bos_token = info.bos_token;
    t.eos_token = info.eos_token.empty() ? "<|im_end|>" : info.eos_token;
  }
  return t;
}

std::vector<ChatMessage> messages_from_json(const nlohmann::json& j, std::string_view origin) {
  const nlohmann::json* arr = &j;
  if (j.is_object() && j.contains("messages")) arr = &j["messages"];
  if (!arr->is_array())
    fail(ErrorKind::kBadFile,
         "{}: expected a JSON array of messages (or an object with a 'messages' array)", origin);
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < arr->size(); ++i) {
    const nlohmann::json& m = (*arr)[i];
    auto str = [&](const char* key, bool required) -> const nlohmann::json* {
      auto it = m.find(key);
      if (it == m.end() || it->is_null()) {
        if (required)
          fail(ErrorKind::kBadFile, "{}: message {} has no '{}' (expected a string)", origin, i,
               key);
        return nullptr;
      }
      if (!it->is_string())
        fail(ErrorKind::kBadFile, "{}: message {} field '{}' must be a string, got {}", origin, i,
             key, it->dump());
      return &*it;
    };
    if (!m.is_object()) fail(ErrorKind::kBadFile, "{}: message {} is not an object", origin, i);
    ChatMessage msg;
    msg.role = str("role", true)->get<std::string>();
    msg.content = str("content", true)->get<std::string>();
    if (const nlohmann::json* r = str("reasoning_content", false)) {
      msg.reasoning = r->get<std::string>();
      msg.has_reasoning = true;
    }
    out.push_back(std::move(msg));
  }
  return out;
}

nlohmann::json messages_to_json(const std::vector<ChatMessage>& messages) {
  nlohmann::json arr = nlohmann::json::array();
  for (const ChatMessage& m : messages) {
    nlohmann::json o = {{"role", m.role}, {"content", m.content}};
    if (m.has_reasoning) o["reasoning_content"] = m.reasoning;
    arr.push_back(std::move(o));
  }
  return arr;
}

}  // namespace cs
