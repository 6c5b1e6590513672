#include "runtime/eval/trace_io.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "runtime/chat/template.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cs {

RoutingTrace read_trace_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kNotFound, "{}: cannot open the routing trace", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return decode_trace(ss.str(), path);
}

void write_trace_file(const std::string& path, const RoutingTrace& trace) {
  const std::string bytes = encode_trace(trace);
  std::ofstream out(path, std::ios::binary);
  if (!out) fail(ErrorKind::kIo, "{}: cannot write the routing trace", path);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) fail(ErrorKind::kIo, "{}: writing the routing trace failed", path);
}

std::vector<TraceRequest> load_trace_requests(const std::string& path, const Model& model,
                                              int default_max_tokens) {
  const Tokenizer* tok = model.tokenizer();
  if (!tok)
    fail(ErrorKind::kNotFound, "{}: the model has no tokenizer; --prompts needs one", model.path());
  std::ifstream in(path);
  if (!in) fail(ErrorKind::kNotFound, "--prompts: cannot open '{}'", path);
  std::vector<TraceRequest> out;
  std::string line;
  int no = 0;
  while (std::getline(in, line)) {
    ++no;
    if (line.find_first_not_of(" \t\r") == std::string::npos || line[0] == '#') continue;
    const std::string where = fmt::format("{}:{}", path, no);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorKind::kInvalidArgument, "{}: not JSON ({})", where, e.what());
    }
    if (!j.is_object())
      fail(ErrorKind::kInvalidArgument, "{}: expected an object with \"prompt\" or \"messages\"",
           where);
    std::string text;
    if (j.contains("prompt") && j.contains("messages"))
      fail(ErrorKind::kInvalidArgument, "{}: give \"prompt\" or \"messages\", not both", where);
    if (j.contains("prompt")) {
      if (!j["prompt"].is_string())
        fail(ErrorKind::kInvalidArgument, "{}: \"prompt\" must be a string", where);
      text = j["prompt"].get<std::string>();
    } else if (j.contains("messages")) {
      const std::vector<ChatMessage> messages = messages_from_json(j["messages"], where);
      text = choose_chat_template(tok->info(), model.config().model_type).render(messages, true);
    } else {
      fail(ErrorKind::kInvalidArgument, "{}: expected \"prompt\" or \"messages\"", where);
    }
    TraceRequest r;
    if (tok->bos_id() >= 0) r.prompt.push_back(tok->bos_id());
    for (int32_t id : tok->encode(text)) r.prompt.push_back(id);
    r.max_tokens = default_max_tokens;
    if (j.contains("max_tokens")) {
      if (!j["max_tokens"].is_number_integer() || j["max_tokens"].get<int64_t>() < 0)
        fail(ErrorKind::kInvalidArgument, "{}: \"max_tokens\" must be an integer >= 0", where);
      r.max_tokens = int(j["max_tokens"].get<int64_t>());
    }
    if (r.prompt.empty()) fail(ErrorKind::kInvalidArgument, "{}: the prompt is empty", where);
    out.push_back(std::move(r));
  }
  if (out.empty()) fail(ErrorKind::kInvalidArgument, "--prompts: '{}' holds no requests", path);
  return out;
}

void run_trace_requests(Session& session, const Model& model,
                        const std::vector<TraceRequest>& requests,
                        const std::function<bool(size_t)>& before,
                        const std::function<void(std::span<const int32_t>)>& feed) {
  for (size_t i = 0; i < requests.size(); ++i) {
    session.reset();
    if (before && !before(i)) return;
    TraceRequest r = requests[i];
    // Keep the request inside the context: the prompt's end and the reply.
    const int room = session.n_ctx() - 1;
    r.max_tokens = std::min(r.max_tokens, room / 2);
    if (int(r.prompt.size()) + r.max_tokens > room)
      r.prompt.erase(r.prompt.begin(),
                     r.prompt.begin() + ptrdiff_t(int(r.prompt.size()) + r.max_tokens - room));
    if (feed) feed(r.prompt);
    if (r.max_tokens == 0) {
      session.eval(r.prompt);
      continue;
    }
    GenerateOptions g;
    g.max_tokens = r.max_tokens;
    g.sampling.greedy = true;
    g.stop_tokens = model.config().eos_token_ids;
    // Session::generate feeds a token back unless it stops generation or is the last one.
    int n = 0;
    TokenCallback on_token;
    if (feed)
      on_token = [&](int32_t t) {
        const auto& stop = g.stop_tokens;
        if (++n < g.max_tokens && std::find(stop.begin(), stop.end(), t) == stop.end())
          feed(std::span<const int32_t>(&t, 1));
        return true;
      };
    session.generate(r.prompt, g, on_token);
  }
}

void run_trace_steps(Session& session, const RoutingTrace& trace,
                     const std::function<void(const TraceStep&, double seconds)>& after) {
  if (!trace.has_tokens())
    fail(ErrorKind::kInvalidArgument,
         "the routing trace has no token ids (recorded by an older `coldstream trace`, version 1); "
         "record it again");
  uint32_t request = ~0u;
  for (const TraceStep& s : trace.steps) {
    if (s.request != request) {
      session.reset();
      request = s.request;
    }
    if (session.n_past() + s.T > session.n_ctx())
      fail(ErrorKind::kContextFull, "trace request {}: {} tokens do not fit a context of {}",
           s.request, session.n_past() + s.T, session.n_ctx());
    const auto t0 = std::chrono::steady_clock::now();
    session.eval(s.tokens);
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (after) after(s, sec);
  }
}

RoutingStats::Report routing_report(const RoutingTrace& trace) {
  const TraceHeader& h = trace.header;
  RoutingStats stats(h.n_layers, h.n_experts, h.k);
  uint32_t request = ~0u;
  for (const TraceStep& s : trace.steps) {
    if (s.request != request) {
      stats.begin_request();
      request = s.request;
    }
    for (const TraceLayer& l : s.layers) stats.observe(l.layer, s.T, l.ids.data());
  }
  return stats.report();
}

}  // namespace cs
