// `coldstream chat`: the REPL. Everything about the conversation (template, incremental prefill,
// stop tokens, reasoning, statistics) lives in runtime/chat/ChatSession; this file reads lines,
// runs commands, prints, and handles Ctrl-C.
#include <fmt/format.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/chat_input.h"
#include "apps/cli_common.h"
#include "apps/cmd_chat.h"
#include "common/error.h"
#include "common/units.h"
#include "offload/nvml.h"
#include "runtime/chat/chat_session.h"
#include "runtime/chat/terminal_text.h"
#include "runtime/engine/session.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cs::cli {
namespace {

namespace fs = std::filesystem;

std::atomic<ChatSession*> g_chat{nullptr};

void on_sigint(int) {
  LineInput::interrupt();
  if (ChatSession* c = g_chat.load()) c->cancel();
}

struct Style {
  bool color = false;
  bool terminal = false;  // stdout is a terminal: model text is passed through terminal_safe
  const char* dim() const { return color ? "\x1b[2m" : ""; }
  const char* bold() const { return color ? "\x1b[1m" : ""; }
  const char* red() const { return color ? "\x1b[31m" : ""; }
  const char* reset() const { return color ? "\x1b[0m" : ""; }
};

void out(std::string_view s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

// Model text: on a terminal, without the control characters that would drive it.
void out_model(std::string_view s, bool terminal) {
  if (terminal)
    out(terminal_safe(s));
  else
    out(s);
}

const char* kHelp =
    "Commands:\n"
    "  /help             this list\n"
    "  /reset            forget the conversation (keeps the system prompt)\n"
    "  /system TEXT      set the system prompt (/system alone clears it)\n"
    "  /think on|off     let the model reason before answering (Qwen3)\n"
    "  /stats            speed, time to first token, context used, offload counters\n"
    "  /save FILE        write the conversation as JSON\n"
    "  /load FILE        read a conversation written by /save (or a messages list)\n"
    "  /quit             leave (also Ctrl-D, or Ctrl-C at an empty prompt)\n"
    "Input: end a line with \\ to continue it; \"\"\" on its own line starts and ends a block.\n"
    "Ctrl-C stops a reply in progress and keeps the conversation.\n";

class Repl {
 public:
  Repl(const ChatArgs& a, Model& model, ChatSession& chat, SessionRuntime& rt, bool interactive,
       Style style)
      : a_(a), model_(model), chat_(chat), rt_(rt), interactive_(interactive), style_(style) {}

  int run() {
    std::string history;
    if (interactive_ && !a_.no_history)
      if (const char* home = std::getenv("HOME"))
        history = std::string(home) + "/.coldstream_history";
    LineInput input(interactive_, history);
    for (;;) {
      std::string text;
      const LineInput::Status st = read_message(input, &text);
      if (st == LineInput::Status::kEof) break;
      if (st == LineInput::Status::kInterrupted) {
        LineInput::clear_interrupt();
        if (text.empty()) break;  // Ctrl-C at an empty prompt leaves
        continue;                 // otherwise it discards the line
      }
      if (text.empty()) continue;
      input.remember(text);
      if (text[0] == '/') {
        if (!command(text)) break;
        continue;
      }
      reply(text);
    }
    if (interactive_) out("\n");
    return 0;
  }

 private:
  // One message: a line, lines joined by a trailing backslash, or a """ block.
  LineInput::Status read_message(LineInput& input, std::string* text) {
    text->clear();
    std::string line;
    bool block = false, first = true;
    for (;;) {
      // A plain prompt: libedit would count the bytes of colour escapes as columns.
      const std::string prompt = !interactive_ ? "" : first ? "> " : "... ";
      const LineInput::Status st = input.read(prompt, &line);
      if (st == LineInput::Status::kInterrupted) {
        *text += line;
        return st;
      }
      if (st == LineInput::Status::kEof) return text->empty() ? st : LineInput::Status::kLine;
      first = false;
      if (line == "\"\"\"") {
        if (block) return LineInput::Status::kLine;
        block = true;
        continue;
      }
      if (block) {
        *text += line + "\n";
        continue;
      }
      if (!line.empty() && line.back() == '\\') {
        line.pop_back();
        *text += line + "\n";
        continue;
      }
      *text += line;
      return LineInput::Status::kLine;
    }
  }

  void reply(const std::string& text) {
    bool in_reasoning = false;
    auto on_text = [&](ReplyPart part, std::string_view s) {
      if (part == ReplyPart::kReasoning) {
        if (a_.hide_reasoning) return;
        if (!in_reasoning) {
          in_reasoning = true;
          out(style_.color ? style_.dim() : "<think>\n");
        }
        out_model(s, style_.terminal);
        return;
      }
      if (in_reasoning) {
        in_reasoning = false;
        out(style_.color ? fmt::format("{}\n\n", style_.reset()) : "\n</think>\n\n");
      }
      out_model(s, style_.terminal);
    };
    g_chat.store(&chat_);
    ChatTurnStats st;
    try {
      st = chat_.send(text, on_text);
    } catch (const Error& e) {
      // A full context window, or a conversation the template refuses (after /load): say so and
      // keep the session.
      g_chat.store(nullptr);
      LineInput::clear_interrupt();
      fmt::print(stderr, "{}{}{}\n", style_.red(), e.what(), style_.reset());
      return;
    }
    g_chat.store(nullptr);
    LineInput::clear_interrupt();
    if (in_reasoning) out(style_.color ? style_.reset() : "\n</think>\n");
    out("\n");
    if (st.stop == StopReason::kCancelled)
      fmt::print(stderr, "{}[stopped]{}\n", style_.dim(), style_.reset());
    if (st.stop == StopReason::kContextFull)
      fmt::print(stderr, "{}[the context window of {} tokens is full; {}]{}\n", style_.red(),
                 chat_.context_size(), kContextFullHint, style_.reset());
    if (interactive_) out("\n");
  }

  // Runs a /command; returns false to quit.
  bool command(const std::string& line) {
    const size_t sp = line.find(' ');
    const std::string cmd = line.substr(0, sp);
    std::string arg = sp == std::string::npos ? "" : line.substr(sp + 1);
    while (!arg.empty() && arg.back() == ' ') arg.pop_back();
    auto note = [&](const std::string& s) {
      fmt::print("{}{}{}\n", style_.dim(), s, style_.reset());
    };
    if (cmd == "/quit" || cmd == "/exit") return false;
    if (cmd == "/help") {
      out(kHelp);
    } else if (cmd == "/reset") {
      chat_.reset();
      note("[conversation cleared]");
    } else if (cmd == "/system") {
      chat_.set_system_prompt(arg);
      note(arg.empty() ? "[system prompt cleared]" : "[system prompt set]");
    } else if (cmd == "/think") {
      if (arg != "on" && arg != "off") {
        note("usage: /think on|off");
      } else {
        chat_.set_thinking(arg == "on");
        if (!chat_.chat_template().supports_thinking())
          note(
              fmt::format("[the {} template has no reasoning mode]", chat_.chat_template().name()));
        else
          note(arg == "on" ? "[thinking on]" : "[thinking off]");
      }
    } else if (cmd == "/stats") {
      stats();
    } else if (cmd == "/save") {
      if (arg.empty()) return note("usage: /save FILE"), true;
      std::ofstream f(arg);
      if (!f) return note(fmt::format("cannot write {}", arg)), true;
      f << chat_.to_json().dump(2) << "\n";
      note(fmt::format("[saved {} messages to {}]", chat_.messages().size(), arg));
    } else if (cmd == "/load") {
      if (arg.empty()) return note("usage: /load FILE"), true;
      try {
        std::ifstream f(arg);
        if (!f) fail(ErrorKind::kNotFound, "{}: cannot open file", arg);
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(f);
        } catch (const nlohmann::json::exception& e) {
          fail(ErrorKind::kBadFile, "{}: malformed JSON: {}", arg, e.what());
        }
        chat_.load_json(j, arg);
        note(fmt::format("[loaded {} messages from {}]", chat_.messages().size(), arg));
      } catch (const Error& e) {
        fmt::print(stderr, "{}{}{}\n", style_.red(), e.what(), style_.reset());
      }
    } else {
      note(fmt::format("unknown command {} (/help lists them)", cmd));
    }
    return true;
  }

  void stats() {
    const ChatTurnStats& s = chat_.last_stats();
    std::string t;
    t += fmt::format("last reply: {} tokens, {:.2f} tok/s, time to first token {:.3f} s ({})\n",
                     s.generated_tokens, s.decode_tokens_per_second(), s.first_token_seconds,
                     stop_reason_name(s.stop));
    t += fmt::format("prompt: {} tokens, {} reused from the cache, {} evaluated at {:.1f} tok/s\n",
                     s.prompt_tokens, s.reused_tokens, s.prefill_tokens,
                     s.prefill_tokens_per_second());
    t += fmt::format("context: {} of {} tokens used\n", chat_.context_used(), chat_.context_size());
    t += fmt::format(
        "session: {} tokens generated, {:.2f} tok/s overall\n", chat_.total_generated(),
        chat_.total_decode_seconds() > 0 ? chat_.total_generated() / chat_.total_decode_seconds()
                                         : 0.0);
    const RuntimeMemory m = rt_.memory();
    t += fmt::format("memory: {} on the {} backend", format_bytes(double(m.device_bytes)),
                     rt_.backend().name());
    if (m.host_expert_bytes > 0)
      t += fmt::format(", {} of host RAM for experts", format_bytes(double(m.host_expert_bytes)));
    t += "\n";
    if (const OffloadTelemetry* o = rt_.telemetry()) {
      // The offload engine's counters since the session began: hits, bytes per tier, stall,
      // predictor precision and recall.
      std::string lines = o->summary();
      for (size_t pos = 0; pos < lines.size();) {
        const size_t nl = lines.find('\n', pos);
        const size_t end = nl == std::string::npos ? lines.size() : nl;
        t += "offload " + lines.substr(pos, end - pos) + "\n";
        pos = end + 1;
      }
    } else {
      t += "offload: off (every expert resident: no offload settings, or the whole model fits the "
           "GPU budget)\n";
    }
    t += nvml_summary() + "\n";
    fmt::print("{}{}{}", style_.dim(), t, style_.reset());
  }

  const ChatArgs& a_;
  Model& model_;
  ChatSession& chat_;
  SessionRuntime& rt_;
  bool interactive_;
  Style style_;
};

}  // namespace

int run_chat_repl(const ChatArgs& a, Model& model, ChatSession& chat, SessionRuntime& rt) {
  const bool interactive = isatty(STDIN_FILENO);
  Style style;
  style.terminal = isatty(STDOUT_FILENO);
  const char* no_color = std::getenv("NO_COLOR");
  const char* term = std::getenv("TERM");
  style.color =
      a.color == "always" || (a.color == "auto" && isatty(STDOUT_FILENO) &&
                              !(no_color && *no_color) && !(term && std::string(term) == "dumb"));
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a read at the prompt returns at once
  sigaction(SIGINT, &sa, nullptr);
  if (interactive) {
    fmt::print("{}{}{}\n", style.bold(), banner(a, model, chat, rt), style.reset());
    fmt::print(
        "{}/help lists commands. Ctrl-C stops a reply; Ctrl-C or Ctrl-D at an empty "
        "prompt quits.{}\n\n",
        style.dim(), style.reset());
  }
  Repl repl(a, model, chat, rt, interactive, style);
  return repl.run();
}

}  // namespace cs::cli
