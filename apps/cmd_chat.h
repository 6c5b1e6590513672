// `coldstream chat`: options, setup (cmd_chat_setup.cpp) and the REPL (cmd_chat.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "apps/offload_cli.h"
#include "runtime/chat/chat_session.h"
#include "runtime/engine/session_runtime.h"
#include "runtime/model/model.h"

namespace cs::cli {

struct ChatArgs {
  std::string model, device = "auto";
  // --config (the one TOML file: [chat], [sampling] and the offload tables), --ctx and the
  // offload flags (--vram-budget, --host-budget, --policy, ...).
  std::shared_ptr<OffloadFlags> offload = std::make_shared<OffloadFlags>();
  std::string system;
  bool no_think = false;
  int max_tokens = 1024;
  int ctx = 0;  // [chat] context of the file (--ctx is device.context); 0: not given
  float temperature = 0.6f, top_p = 0.95f, min_p = 0.0f, repetition_penalty = 1.0f;
  int top_k = 20;
  uint64_t seed = 0;
  bool greedy = false;
  std::string color = "auto";  // auto, always, never
  bool hide_reasoning = false;
  bool no_history = false;
  bool ignore_eos = false;
  std::vector<std::string> set_flags;  // flags given on the command line (override --config)
};

// Where `coldstream chat` looks for the model when --model is not given: models/<kDefaultModel>
// (a packed file, or a directory) beside the executable's tree, the source tree, or the install
// prefix. Throws cs::Error (kNotFound) listing the places looked at.
inline constexpr const char* kDefaultModel = "coldstream-demo";
std::string find_default_model(const std::string& argv0);

// The first lines shown: what the model is (config.json's "coldstream_description" when present,
// e.g. that its weights are random), its size, tokenizer, template and context.
std::string banner(const ChatArgs& a, const Model& model, const ChatSession& chat,
                   const SessionRuntime& rt);

int run_chat_repl(const ChatArgs& a, Model& model, ChatSession& chat, SessionRuntime& rt);

}  // namespace cs::cli
