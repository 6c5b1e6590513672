// The C API through libcoldstream.so only (this binary links nothing else of coldstream): every
// function, its misuse, cancellation, threads, broken files. Runs on the demo model
// (models/coldstream-demo.cst) on the CPU.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "coldstream.h"

namespace fs = std::filesystem;

namespace {

const char* demo() {
  return CS_DEMO_MODEL;
}

// A loaded model and its session, freed at scope end.
struct Loaded {
  cs_model* model = nullptr;
  cs_session* session = nullptr;
  explicit Loaded(const cs_model_params* mp = nullptr, const cs_session_params* sp = nullptr) {
    cs_model_params p = mp ? *mp : cs_model_default_params();
    if (!mp) p.device = "cpu";
    REQUIRE_MESSAGE(cs_model_load(demo(), &p, &model) == CS_OK, cs_last_error());
    REQUIRE_MESSAGE(cs_session_new(model, sp, &session) == CS_OK, cs_last_error());
  }
  ~Loaded() {
    cs_session_free(session);
    cs_model_free(model);
  }
};

struct Collect {
  std::string answer, reasoning;
  int calls = 0;
  int stop_after = 0;  // > 0: ask to stop at this call
};

int collect(const char* text, size_t length, int is_reasoning, void* user) {
  auto* c = static_cast<Collect*>(user);
  (is_reasoning ? c->reasoning : c->answer).append(text, length);
  ++c->calls;
  return c->stop_after > 0 && c->calls >= c->stop_after;
}

cs_sampling_params greedy(int max_tokens) {
  cs_sampling_params g = cs_sampling_default_params();
  g.temperature = 0;
  g.max_tokens = max_tokens;
  return g;
}

std::string reply(cs_session* s, const char* user, int max_tokens, cs_status* st = nullptr) {
  REQUIRE(cs_session_add_message(s, "user", user) == CS_OK);
  const cs_sampling_params g = greedy(max_tokens);
  Collect c;
  const cs_status r = cs_session_generate(s, &g, collect, &c);
  if (st)
    *st = r;
  else
    REQUIRE_MESSAGE(r == CS_OK, cs_last_error());
  return c.reasoning + "|" + c.answer;
}

fs::path scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("cs_capi_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d / name;
}

std::string last_error() {
  return cs_last_error();
}

}  // namespace

TEST_CASE("versions, status names and the per-thread last error") {
  CHECK(std::string(cs_version()) == std::to_string(CS_VERSION_MAJOR) + "." +
                                         std::to_string(CS_VERSION_MINOR) + "." +
                                         std::to_string(CS_VERSION_PATCH));
  CHECK(std::string(cs_status_string(CS_OK)) == "ok");
  CHECK(std::string(cs_status_string(CS_ERR_CONTEXT_FULL)) == "context full");
  CHECK(std::string(cs_status_string(static_cast<cs_status>(1234))) == "unknown status");
  cs_model* m = nullptr;
  CHECK(cs_model_load(nullptr, nullptr, &m) == CS_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("cs_model_load: path") != std::string::npos);
  // Another thread has its own message.
  std::string other = "unset";
  std::thread([&] { other = cs_last_error(); }).join();
  CHECK(other.empty());
  // A success clears it.
  cs_model_info info{};
  info.size = sizeof info;
  Loaded l;
  CHECK(cs_model_get_info(l.model, &info) == CS_OK);
  CHECK(last_error().empty());
}

TEST_CASE("default params carry their size and documented defaults") {
  const cs_model_params mp = cs_model_default_params();
  CHECK(mp.size == sizeof(cs_model_params));
  CHECK(std::string(mp.device) == "auto");
  const cs_session_params sp = cs_session_default_params();
  CHECK(sp.size == sizeof(cs_session_params));
  CHECK(sp.thinking == 1);
  const cs_sampling_params gp = cs_sampling_default_params();
  CHECK(gp.size == sizeof(cs_sampling_params));
  CHECK(gp.max_tokens == 512);
  CHECK(gp.top_k == 20);
}

TEST_CASE("cs_model_load: misuse, missing, truncated and corrupted files") {
  cs_model* m = reinterpret_cast<cs_model*>(0x1);
  cs_model_params p = cs_model_default_params();
  p.device = "cpu";
  CHECK(cs_model_load(demo(), &p, nullptr) == CS_ERR_INVALID_ARGUMENT);
  CHECK(cs_model_load("", &p, &m) == CS_ERR_INVALID_ARGUMENT);
  CHECK(m == nullptr);  // set to NULL on failure
  cs_model_params wrong = p;
  wrong.size = sizeof(cs_model_params) - 8;
  CHECK(cs_model_load(demo(), &wrong, &m) == CS_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("cs_model_params.size") != std::string::npos);
  cs_model_params bad_device = p;
  bad_device.device = "tpu";
  CHECK(cs_model_load(demo(), &bad_device, &m) == CS_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("'tpu'") != std::string::npos);
  CHECK(cs_model_load("/nonexistent/model.cst", &p, &m) == CS_ERR_NOT_FOUND);
  CHECK(m == nullptr);

  // Truncated: the first half of the file.
  const fs::path cut = scratch("truncated.cst");
  {
    std::ifstream in(demo(), std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
    REQUIRE(bytes.size() > 4096);
    std::ofstream(cut, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size() / 2));
    // Corrupted header: the magic kept, the bytes after it flipped.
    std::vector<char> bad = bytes;
    for (size_t i = 16; i < 64; ++i) bad[i] = char(~bad[i]);
    std::ofstream(scratch("header.cst"), std::ios::binary)
        .write(bad.data(), std::streamsize(bad.size()));
    std::ofstream(scratch("empty.cst"), std::ios::binary).flush();
  }
  for (const std::string name : {"truncated.cst", "header.cst", "empty.cst"}) {
    CAPTURE(name);
    const cs_status st = cs_model_load(scratch(name).c_str(), &p, &m);
    CAPTURE(last_error());
    // An empty file is not recognised as any format; the others are broken packed files.
    CHECK(st == (name == "empty.cst" ? CS_ERR_UNSUPPORTED : CS_ERR_BAD_FILE));
    CHECK(m == nullptr);
    CHECK(last_error().find(name) != std::string::npos);  // the message names the file
  }
}

TEST_CASE("a corrupted expert is an error at first use, not a crash") {
  std::ifstream in(demo(), std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
  // Flip bytes across the file's second half (expert blobs), leaving the header alone.
  for (size_t i = bytes.size() / 2; i < bytes.size() * 9 / 10; i += 997) bytes[i] = char(~bytes[i]);
  const fs::path path = scratch("experts.cst");
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  cs_model_params p = cs_model_default_params();
  p.device = "cpu";
  cs_model* m = nullptr;
  const cs_status load = cs_model_load(path.c_str(), &p, &m);
  if (load != CS_OK) {
    CHECK(load == CS_ERR_BAD_FILE);  // a weight checksum caught it already
    return;
  }
  // The session (which may read experts while it sets up) or its first reply fails.
  cs_session* s = nullptr;
  cs_status st = cs_session_new(m, nullptr, &s);
  if (st == CS_OK) reply(s, "Hello, tell me a long story about the sea and the wind.", 64, &st);
  CHECK(st == CS_ERR_BAD_FILE);
  MESSAGE(last_error());
  CHECK(last_error().find("checksum") != std::string::npos);
  cs_session_free(s);
  cs_model_free(m);
}

TEST_CASE("load progress rises to 1 and can cancel") {
  struct Seen {
    std::vector<float> f;
    int cancel_at = -1;
  };
  auto cb = [](float f, void* u) {
    auto* s = static_cast<Seen*>(u);
    s->f.push_back(f);
    return int(s->cancel_at >= 0 && int(s->f.size()) > s->cancel_at);
  };
  cs_model_params p = cs_model_default_params();
  p.device = "cpu";
  p.progress = cb;
  Seen seen;
  p.progress_user_data = &seen;
  cs_model* m = nullptr;
  REQUIRE(cs_model_load(demo(), &p, &m) == CS_OK);
  cs_model_free(m);
  REQUIRE(seen.f.size() >= 3);  // 0, at least one step while reading, 1
  CHECK(seen.f.front() == 0.0f);
  CHECK(seen.f.back() == 1.0f);
  for (size_t i = 1; i < seen.f.size(); ++i) CHECK(seen.f[i] >= seen.f[i - 1]);
  for (int at : {0, 1}) {
    Seen stop;
    stop.cancel_at = at;
    p.progress_user_data = &stop;
    m = reinterpret_cast<cs_model*>(0x1);
    CHECK(cs_model_load(demo(), &p, &m) == CS_ERR_CANCELLED);
    CHECK(m == nullptr);
    CHECK(int(stop.f.size()) == at + 1);  // nothing after the callback said stop
  }
}

TEST_CASE("configuration from TOML text and files; errors name the place") {
  cs_model_params p = cs_model_default_params();
  p.device = "cpu";
  p.config_toml = "[chat]\nsystem = \"ignored here\"\n[device]\ncontext = 96\n";
  cs_model* m = nullptr;
  REQUIRE_MESSAGE(cs_model_load(demo(), &p, &m) == CS_OK, cs_last_error());
  cs_session* s = nullptr;
  REQUIRE(cs_session_new(m, nullptr, &s) == CS_OK);
  cs_stats st{};
  st.size = sizeof st;
  REQUIRE(cs_session_get_stats(s, &st) == CS_OK);
  CHECK(st.context_size == 96);   // [device] context from the text
  CHECK(st.offload_active == 0);  // device keys alone keep experts resident
  cs_session_free(s);
  cs_model_free(m);

  p.config_toml = "[cache]\npolicy = \"lru\"\n\n[cache]\n";
  CHECK(cs_model_load(demo(), &p, &m) == CS_ERR_BAD_FILE);  // a TOML syntax error
  CHECK(last_error().find("config_toml:4") != std::string::npos);
  p.config_toml = "[chat]\nsystem = \"x\"\n[cache]\npolcy = \"lru\"\n";
  CHECK(cs_model_load(demo(), &p, &m) == CS_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("config_toml:4") != std::string::npos);  // lines stay true
  CHECK(last_error().find("cache.polcy") != std::string::npos);
  p.config_toml = nullptr;
  const fs::path file = scratch("c.toml");
  std::ofstream(file) << "[device]\ncontext = 80\n";
  p.config_path = file.c_str();
  REQUIRE(cs_model_load(demo(), &p, &m) == CS_OK);
  REQUIRE(cs_session_new(m, nullptr, &s) == CS_OK);
  REQUIRE(cs_session_get_stats(s, &st) == CS_OK);
  CHECK(st.context_size == 80);
  cs_session_free(s);
  cs_model_free(m);
  p.config_path = "/nonexistent.toml";
  CHECK(cs_model_load(demo(), &p, &m) == CS_ERR_NOT_FOUND);
  CHECK(last_error().find("/nonexistent.toml") != std::string::npos);
}

TEST_CASE("model info, tokenize and detokenize") {
  Loaded l;
  cs_model_info info{};
  CHECK(cs_model_get_info(l.model, &info) == CS_ERR_INVALID_ARGUMENT);  // size not set
  info.size = sizeof info;
  CHECK(cs_model_get_info(nullptr, &info) == CS_ERR_INVALID_ARGUMENT);
  CHECK(cs_model_get_info(l.model, nullptr) == CS_ERR_INVALID_ARGUMENT);
  REQUIRE(cs_model_get_info(l.model, &info) == CS_OK);
  CHECK(std::string(info.architecture) == "qwen3_moe");
  CHECK(info.n_vocab > 1000);
  CHECK(info.n_layers > 0);
  CHECK(info.n_experts >= info.n_experts_per_token);
  CHECK(info.has_tokenizer == 1);
  CHECK(std::string(info.description).size() > 0);

  const char* text = "<|im_start|>Hello, world<|im_end|>";
  size_t n = 0;
  REQUIRE(cs_model_tokenize(l.model, text, 1, nullptr, 0, &n) == CS_OK);  // measures
  REQUIRE(n >= 3);
  std::vector<int32_t> ids(n);
  CHECK(cs_model_tokenize(l.model, text, 1, ids.data(), n - 1, &n) == CS_ERR_BUFFER_TOO_SMALL);
  CHECK(n == ids.size());
  REQUIRE(cs_model_tokenize(l.model, text, 1, ids.data(), ids.size(), &n) == CS_OK);
  size_t len = 0;
  REQUIRE(cs_model_detokenize(l.model, ids.data(), n, nullptr, 0, &len) == CS_OK);
  CHECK(len == std::strlen(text));
  std::vector<char> buf(len + 1);
  CHECK(cs_model_detokenize(l.model, ids.data(), n, buf.data(), len, &len) ==
        CS_ERR_BUFFER_TOO_SMALL);  // no room for the NUL
  REQUIRE(cs_model_detokenize(l.model, ids.data(), n, buf.data(), buf.size(), &len) == CS_OK);
  CHECK(std::string(buf.data()) == text);
  const int32_t bad[] = {-1};
  CHECK(cs_model_detokenize(l.model, bad, 1, buf.data(), buf.size(), &len) ==
        CS_ERR_INVALID_ARGUMENT);
  CHECK(cs_model_tokenize(nullptr, text, 1, nullptr, 0, &n) == CS_ERR_INVALID_ARGUMENT);
  CHECK(cs_model_tokenize(l.model, nullptr, 1, nullptr, 0, &n) == CS_ERR_INVALID_ARGUMENT);
  CHECK(cs_model_tokenize(l.model, text, 1, nullptr, 5, &n) == CS_ERR_INVALID_ARGUMENT);
  CHECK(cs_model_detokenize(nullptr, ids.data(), n, buf.data(), buf.size(), &len) ==
        CS_ERR_INVALID_ARGUMENT);
}

TEST_CASE("sessions: misuse of handles and params") {
  cs_model_params mp = cs_model_default_params();
  mp.device = "cpu";
  cs_model* m = nullptr;
  REQUIRE(cs_model_load(demo(), &mp, &m) == CS_OK);
  cs_session* s = reinterpret_cast<cs_session*>(0x1);
  CHECK(cs_session_new(nullptr, nullptr, &s) == CS_ERR_INVALID_ARGUMENT);
  CHECK(s == nullptr);
  CHECK(cs_session_new(m, nullptr, nullptr) == CS_ERR_INVALID_ARGUMENT);
  cs_session_params sp = cs_session_default_params();
  sp.size = 1;
  CHECK(cs_session_new(m, &sp, &s) == CS_ERR_INVALID_ARGUMENT);
  sp = cs_session_default_params();
  sp.n_ctx = -5;
  CHECK(cs_session_new(m, &sp, &s) == CS_ERR_INVALID_ARGUMENT);
  cs_session_free(nullptr);  // allowed
  cs_model_free(nullptr);
  cs_session_cancel(nullptr);

  // Every session function refuses a NULL session.
  const cs_sampling_params g = greedy(4);
  size_t n = 0;
  const float* lg = nullptr;
  int32_t t = 0;
  cs_stats st{};
  st.size = sizeof st;
  CHECK(cs_session_add_message(nullptr, "user", "x") == CS_ERR_INVALID_ARGUMENT);
  CHECK(cs_session_set_thinking(nullptr, 0) == CS_ERR_INVALID_ARGUMENT);
  CHECK(cs_session_render(nullptr, nullptr, 0, &n) == CS_ERR_INVALID_ARGUMENT);
  CHECK(cs_session_generate(nullptr, &g, nullptr, nullptr) == CS_ERR_INVALID_ARGUMENT);
  CHECK(cs_session_reset(nullptr) == CS_ERR_INVALID_ARGUMENT);
  CHECK(cs_session_eval(nullptr, &t, 1) == CS_ERR_INVALID_ARGUMENT);
  CHECK(cs_session_logits(nullptr, &lg, &n) == CS_ERR_INVALID_ARGUMENT);
  CHECK(cs_session_sample(nullptr, &g, &t) == CS_ERR_INVALID_ARGUMENT);
  CHECK(cs_session_tokens(nullptr, nullptr, 0, &n) == CS_ERR_INVALID_ARGUMENT);
  CHECK(cs_session_get_stats(nullptr, &st) == CS_ERR_INVALID_ARGUMENT);

  REQUIRE(cs_session_new(m, nullptr, &s) == CS_OK);
  CHECK(cs_session_add_message(s, "robot", "x") == CS_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("'robot'") != std::string::npos);
  CHECK(cs_session_add_message(s, "user", nullptr) == CS_ERR_INVALID_ARGUMENT);
  cs_sampling_params wrong = g;
  wrong.size += 4;
  CHECK(cs_session_generate(s, &wrong, nullptr, nullptr) == CS_ERR_INVALID_ARGUMENT);
  CHECK(last_error().find("cs_sampling_params.size") != std::string::npos);
  cs_sampling_params neg = g;
  neg.top_p = 0;
  CHECK(cs_session_generate(s, &neg, nullptr, nullptr) == CS_ERR_INVALID_ARGUMENT);
  st.size = 3;
  CHECK(cs_session_get_stats(s, &st) == CS_ERR_INVALID_ARGUMENT);
  CHECK(cs_session_logits(s, &lg, &n) == CS_ERR_INVALID_ARGUMENT);  // nothing evaluated
  CHECK(cs_session_sample(s, &g, &t) == CS_ERR_INVALID_ARGUMENT);
  cs_session_free(s);
  cs_model_free(m);
}

TEST_CASE("chat: render, generate with streaming, stats, reset") {
  cs_session_params sp = cs_session_default_params();
  sp.system_prompt = "Be brief.";
  Loaded l(nullptr, &sp);
  REQUIRE(cs_session_add_message(l.session, "user", "Hello") == CS_OK);
  size_t len = 0;
  REQUIRE(cs_session_render(l.session, nullptr, 0, &len) == CS_OK);
  std::string prompt(len, '\0');
  std::vector<char> buf(len + 1);
  REQUIRE(cs_session_render(l.session, buf.data(), buf.size(), &len) == CS_OK);
  prompt = buf.data();
  CHECK(prompt ==
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
        "<|im_start|>assistant\n");
  REQUIRE(cs_session_set_thinking(l.session, 0) == CS_OK);
  REQUIRE(cs_session_render(l.session, buf.data(), buf.size(), &len) == CS_ERR_BUFFER_TOO_SMALL);
  buf.resize(len + 1);
  REQUIRE(cs_session_render(l.session, buf.data(), buf.size(), &len) == CS_OK);
  CHECK(std::string(buf.data()).ends_with("<|im_start|>assistant\n<think>\n\n</think>\n\n"));

  const cs_sampling_params g = greedy(24);
  Collect c;
  const cs_status st = cs_session_generate(l.session, &g, collect, &c);
  REQUIRE_MESSAGE(st == CS_OK, cs_last_error());
  CHECK(c.calls > 0);
  CHECK(!c.answer.empty());
  cs_stats s{};
  s.size = sizeof s;
  REQUIRE(cs_session_get_stats(l.session, &s) == CS_OK);
  CHECK(s.generated_tokens > 0);
  CHECK(s.generated_tokens <= 24);
  CHECK(s.prompt_tokens > 5);
  CHECK(s.time_to_first_token_s > 0);
  CHECK(s.context_used >= s.prompt_tokens);
  cs_model_info info{};
  info.size = sizeof info;
  REQUIRE(cs_model_get_info(l.model, &info) == CS_OK);
  CHECK(s.context_size == std::min(info.context_length, 4096));  // the default window
  CHECK(s.offload_active == 0);
  CHECK(s.expert_uses == 0);
  CHECK(s.host_memory_bytes == 0);
  // The next turn reuses the cached prompt.
  reply(l.session, "And again?", 8);
  REQUIRE(cs_session_get_stats(l.session, &s) == CS_OK);
  CHECK(s.reused_tokens > 0);
  size_t n_past = 0;
  REQUIRE(cs_session_tokens(l.session, nullptr, 0, &n_past) == CS_OK);
  CHECK(int(n_past) == s.context_used);
  REQUIRE(cs_session_reset(l.session) == CS_OK);
  REQUIRE(cs_session_get_stats(l.session, &s) == CS_OK);
  CHECK(s.context_used == 0);
  REQUIRE(cs_session_render(l.session, buf.data(), buf.size(), &len) == CS_OK);
  CHECK(std::string(buf.data()).starts_with("<|im_start|>system\nBe brief."));  // system stays
  CHECK(std::string(buf.data()).find("Hello") == std::string::npos);
}

TEST_CASE("greedy replies are deterministic and max_tokens bounds them") {
  Loaded a, b;
  CHECK(reply(a.session, "What is a router?", 16) == reply(b.session, "What is a router?", 16));
  cs_sampling_params g = greedy(5);
  g.ignore_stop_tokens = 1;
  REQUIRE(cs_session_add_message(a.session, "user", "Count") == CS_OK);
  REQUIRE(cs_session_generate(a.session, &g, nullptr, nullptr) == CS_OK);  // NULL callback
  cs_stats s{};
  s.size = sizeof s;
  REQUIRE(cs_session_get_stats(a.session, &s) == CS_OK);
  CHECK(s.generated_tokens == 5);
}

TEST_CASE("a callback that stops early") {
  Loaded l;
  REQUIRE(cs_session_add_message(l.session, "user", "Tell me a long story.") == CS_OK);
  cs_sampling_params g = greedy(200);
  g.ignore_stop_tokens = 1;
  Collect c;
  c.stop_after = 3;
  CHECK(cs_session_generate(l.session, &g, collect, &c) == CS_ERR_CANCELLED);
  CHECK(c.calls == 3);  // nothing after it said stop
  CHECK(last_error().find("the callback") != std::string::npos);
  cs_stats s{};
  s.size = sizeof s;
  REQUIRE(cs_session_get_stats(l.session, &s) == CS_OK);
  CHECK(s.generated_tokens < 200);
  // The partial reply is kept: the next prompt renders it.
  size_t len = 0;
  REQUIRE(cs_session_render(l.session, nullptr, 0, &len) == CS_OK);
  std::vector<char> buf(len + 1);
  REQUIRE(cs_session_render(l.session, buf.data(), buf.size(), &len) == CS_OK);
  CHECK(std::string(buf.data()).find(c.reasoning + c.answer) != std::string::npos);
  // The session goes on.
  reply(l.session, "Go on", 4);
}

TEST_CASE("cs_session_cancel from another thread stops a generation in progress") {
  cs_session_params sp = cs_session_default_params();
  sp.n_ctx = 4096;
  Loaded l(nullptr, &sp);
  REQUIRE(cs_session_add_message(l.session, "user", "Talk for a long time.") == CS_OK);
  cs_sampling_params g = greedy(3000);
  g.ignore_stop_tokens = 1;
  struct Shared {
    std::atomic<int> calls{0};
  } sh;
  auto count = [](const char*, size_t, int, void* u) {
    static_cast<Shared*>(u)->calls.fetch_add(1);
    return 0;
  };
  cs_status st = CS_OK;
  std::thread gen([&] { st = cs_session_generate(l.session, &g, count, &sh); });
  while (sh.calls.load() < 5) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  cs_session_cancel(l.session);
  gen.join();
  CHECK(st == CS_ERR_CANCELLED);
  cs_stats s{};
  s.size = sizeof s;
  REQUIRE(cs_session_get_stats(l.session, &s) == CS_OK);
  CHECK(s.generated_tokens < 3000);
  CHECK(s.generated_tokens >= 5);
  // A cancel with nothing running is a no-op: the next call runs.
  cs_session_cancel(l.session);
  reply(l.session, "Short now", 4);
}

TEST_CASE("the context window: full prompt and full reply") {
  cs_session_params sp = cs_session_default_params();
  sp.n_ctx = 48;
  Loaded l(nullptr, &sp);
  std::string longer;
  for (int i = 0; i < 20; ++i) longer += "The router predicts the next word. ";
  cs_status st = CS_OK;
  reply(l.session, longer.c_str(), 8, &st);
  CHECK(st == CS_ERR_CONTEXT_FULL);
  CHECK(last_error().find("context window of 48 tokens; cs_session_reset starts over") !=
        std::string::npos);
  REQUIRE(cs_session_reset(l.session) == CS_OK);
  // A short prompt whose reply runs into the end of the window.
  REQUIRE(cs_session_add_message(l.session, "user", "Hi") == CS_OK);
  cs_sampling_params g = greedy(1000);
  g.ignore_stop_tokens = 1;
  CHECK(cs_session_generate(l.session, &g, nullptr, nullptr) == CS_ERR_CONTEXT_FULL);
  // Token level: more tokens than fit.
  REQUIRE(cs_session_reset(l.session) == CS_OK);
  std::vector<int32_t> many(49, 100);
  CHECK(cs_session_eval(l.session, many.data(), many.size()) == CS_ERR_CONTEXT_FULL);
  size_t n_past = 1;
  REQUIRE(cs_session_tokens(l.session, nullptr, 0, &n_past) == CS_OK);
  CHECK(n_past == 0);  // nothing was added
}

TEST_CASE("token level: eval, logits, sample, tokens") {
  Loaded l;
  size_t n = 0;
  REQUIRE(cs_model_tokenize(l.model, "The cat sat on the", 0, nullptr, 0, &n) == CS_OK);
  std::vector<int32_t> ids(n);
  REQUIRE(cs_model_tokenize(l.model, "The cat sat on the", 0, ids.data(), n, &n) == CS_OK);
  REQUIRE(cs_session_eval(l.session, ids.data(), ids.size()) == CS_OK);
  const float* logits = nullptr;
  size_t V = 0;
  REQUIRE(cs_session_logits(l.session, &logits, &V) == CS_OK);
  cs_model_info info{};
  info.size = sizeof info;
  REQUIRE(cs_model_get_info(l.model, &info) == CS_OK);
  CHECK(V == size_t(info.n_vocab));
  size_t best = 0;
  for (size_t i = 1; i < V; ++i)
    if (logits[i] > logits[best]) best = i;
  const cs_sampling_params g = greedy(1);
  int32_t t = -1;
  REQUIRE(cs_session_sample(l.session, &g, &t) == CS_OK);
  CHECK(t == int32_t(best));
  // Seeded sampling repeats with the same seed and params.
  cs_sampling_params hot = cs_sampling_default_params();
  hot.temperature = 1.5f;
  hot.top_k = 0;
  hot.top_p = 1;
  hot.seed = 7;
  std::vector<int32_t> first, second;
  for (int i = 0; i < 8; ++i) {
    REQUIRE(cs_session_sample(l.session, &hot, &t) == CS_OK);
    first.push_back(t);
  }
  hot.seed = 8;  // new params restart the sequence
  REQUIRE(cs_session_sample(l.session, &hot, &t) == CS_OK);
  hot.seed = 7;
  for (int i = 0; i < 8; ++i) {
    REQUIRE(cs_session_sample(l.session, &hot, &t) == CS_OK);
    second.push_back(t);
  }
  CHECK(first == second);
  // Feeding the sampled token continues the context.
  const int32_t next = int32_t(best);
  REQUIRE(cs_session_eval(l.session, &next, 1) == CS_OK);
  std::vector<int32_t> ctx(ids.size() + 1);
  size_t n_past = 0;
  CHECK(cs_session_tokens(l.session, ctx.data(), 2, &n_past) == CS_ERR_BUFFER_TOO_SMALL);
  REQUIRE(cs_session_tokens(l.session, ctx.data(), ctx.size(), &n_past) == CS_OK);
  CHECK(n_past == ids.size() + 1);
  CHECK(ctx.back() == next);
  const int32_t bad[] = {1, info.n_vocab};
  CHECK(cs_session_eval(l.session, bad, 2) == CS_ERR_INVALID_ARGUMENT);
  CHECK(cs_session_eval(l.session, nullptr, 2) == CS_ERR_INVALID_ARGUMENT);
  CHECK(cs_session_eval(l.session, bad, 0) == CS_ERR_INVALID_ARGUMENT);
  REQUIRE(cs_session_tokens(l.session, nullptr, 0, &n_past) == CS_OK);
  CHECK(n_past == ids.size() + 1);  // the refused calls added nothing
}

TEST_CASE("cs_session_cancel stops a long cs_session_eval between chunks") {
  cs_session_params sp = cs_session_default_params();
  sp.n_ctx = 4096;
  Loaded l(nullptr, &sp);
  std::vector<int32_t> ids(3000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(100 + i % 500);
  std::atomic<bool> done{false};
  cs_status st = CS_OK;
  std::thread t([&] {
    st = cs_session_eval(l.session, ids.data(), ids.size());
    done = true;
  });
  // Keep cancelling until the call returns (a cancel before it starts is dropped).
  size_t n_past = 0;
  while (!done.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    cs_session_cancel(l.session);
  }
  t.join();
  CHECK(st == CS_ERR_CANCELLED);
  REQUIRE(cs_session_tokens(l.session, nullptr, 0, &n_past) == CS_OK);
  CHECK(n_past < ids.size());
  CHECK(n_past % 128 == 0);  // whole chunks only
}

TEST_CASE("two sessions on one model in two threads") {
  cs_model_params mp = cs_model_default_params();
  mp.device = "cpu";
  cs_model* m = nullptr;
  REQUIRE(cs_model_load(demo(), &mp, &m) == CS_OK);
  auto run = [&](const char* prompt) {
    cs_session* s = nullptr;
    std::string out = "failed";
    if (cs_session_new(m, nullptr, &s) != CS_OK) return out;
    cs_status st = CS_OK;
    if (cs_session_add_message(s, "user", prompt) == CS_OK) {
      const cs_sampling_params g = greedy(24);
      Collect c;
      st = cs_session_generate(s, &g, collect, &c);
      if (st == CS_OK) out = c.reasoning + "|" + c.answer;
    }
    cs_session_free(s);
    return out;
  };
  // Alone first, then both at once: the same replies.
  const std::string a1 = run("What is an expert?"), b1 = run("Name a colour.");
  std::string a2, b2;
  std::thread ta([&] { a2 = run("What is an expert?"); });
  std::thread tb([&] { b2 = run("Name a colour."); });
  ta.join();
  tb.join();
  CHECK(a1 != "failed");
  CHECK(a2 == a1);
  CHECK(b2 == b1);
  cs_model_free(m);
}

TEST_CASE("the offload engine on the CPU: same replies, offload statistics") {
  cs_model_params mp = cs_model_default_params();
  mp.device = "cpu";
  Loaded resident(&mp);
  mp.config_toml =
      "[device]\nbackend = \"cpu\"\n[cache]\npolicy = \"lru\"\n[predictor]\nkind = \"lookahead\"\n";
  mp.vram_budget_bytes = 64ull << 20;
  Loaded off(&mp);
  const std::string want = reply(resident.session, "What is a router?", 16);
  CHECK(reply(off.session, "What is a router?", 16) == want);
  cs_stats s{};
  s.size = sizeof s;
  REQUIRE(cs_session_get_stats(off.session, &s) == CS_OK);
  CHECK(s.offload_active == 1);
  CHECK(s.expert_uses > 0);
  CHECK(s.expert_hit_rate >= 0.0);
  CHECK(s.expert_hit_rate <= 1.0);
  CHECK(s.host_memory_bytes > 0);
  CHECK(s.gpu_memory_bytes > 0);
  CHECK(s.predictor_precision >= 0.0);
  CHECK(s.predictor_recall <= 1.0);
  // Experts come from host RAM to the (simulated) GPU: bytes move unless everything hit.
  CHECK((s.bytes_from_ram > 0 || s.expert_hit_rate == 1.0));
}

TEST_CASE("a Hugging Face directory without a tokenizer: token level only") {
  cs_model_params p = cs_model_default_params();
  p.device = "cpu";
  p.offload = 1;  // the offload engine without any other setting
  cs_model* m = nullptr;
  REQUIRE_MESSAGE(cs_model_load(CS_FIXTURES "/qwen3moe", &p, &m) == CS_OK, cs_last_error());
  cs_model_info info{};
  info.size = sizeof info;
  REQUIRE(cs_model_get_info(m, &info) == CS_OK);
  CHECK(info.has_tokenizer == 0);
  size_t n = 0;
  CHECK(cs_model_tokenize(m, "hi", 1, nullptr, 0, &n) == CS_ERR_UNSUPPORTED);
  cs_session* s = nullptr;
  REQUIRE_MESSAGE(cs_session_new(m, nullptr, &s) == CS_OK, cs_last_error());
  CHECK(cs_session_add_message(s, "user", "hi") == CS_ERR_UNSUPPORTED);
  CHECK(last_error().find("no tokenizer") != std::string::npos);
  CHECK(cs_session_generate(s, nullptr, nullptr, nullptr) == CS_ERR_UNSUPPORTED);
  size_t len = 0;
  CHECK(cs_session_render(s, nullptr, 0, &len) == CS_ERR_UNSUPPORTED);
  const int32_t ids[] = {1, 5, 9, 200};
  REQUIRE_MESSAGE(cs_session_eval(s, ids, 4) == CS_OK, cs_last_error());
  int32_t t = -1;
  const cs_sampling_params g = greedy(1);
  REQUIRE(cs_session_sample(s, &g, &t) == CS_OK);
  CHECK(t >= 0);
  CHECK(t < info.n_vocab);
  cs_stats st{};
  st.size = sizeof st;
  REQUIRE(cs_session_get_stats(s, &st) == CS_OK);
  CHECK(st.offload_active == 1);  // params.offload = 1
  CHECK(st.expert_uses > 0);
  CHECK(st.generated_tokens == 0);  // token level: no reply statistics
  CHECK(st.context_used == 4);
  // cs_session_cancel on a session without chat stops its eval too.
  cs_session_cancel(s);
  REQUIRE(cs_session_reset(s) == CS_OK);
  REQUIRE(cs_session_eval(s, ids, 4) == CS_OK);  // a cancel with nothing running is dropped
  cs_session_free(s);
  cs_model_free(m);
}
