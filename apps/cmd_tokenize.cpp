// `coldstream tokenize` (text -> tokens) and `coldstream bench-tokenizer` (load time, encode
// speed on one core).
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <iterator>

#include "apps/cli_common.h"
#include "common/error.h"
#include "runtime/model/model.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cs::cli {
namespace {

struct TokenizeArgs {
  std::string model, tokenizer, text;
  bool ids_only = false, no_special = false, bos = false;
};

// A token's bytes as a JSON-style string: printable UTF-8 as is, the rest escaped.
std::string show(std::string_view b) {
  std::string out = "\"";
  for (size_t i = 0; i < b.size(); ++i) {
    const uint8_t c = uint8_t(b[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else if (c < 0x80) {
      out += char(c);
    } else {
      // Keep complete UTF-8 sequences, escape stray bytes.
      size_t n = (c >= 0xF0) ? 4 : (c >= 0xE0) ? 3 : (c >= 0xC2) ? 2 : 0;
      bool ok = n && i + n <= b.size();
      for (size_t k = 1; ok && k < n; ++k) ok = (uint8_t(b[i + k]) & 0xC0) == 0x80;
      if (ok) {
        out.append(b.substr(i, n));
        i += n - 1;
      } else {
        out += fmt::format("\\x{:02x}", c);
      }
    }
  }
  return out + "\"";
}

void run_tokenize(const TokenizeArgs& a) {
  std::unique_ptr<Tokenizer> tok = load_cli_tokenizer(a.model, a.tokenizer);
  std::string text = a.text;
  if (text == "-") text.assign(std::istreambuf_iterator<char>(std::cin), {});
  std::vector<int32_t> ids;
  if (a.bos && tok->bos_id() >= 0) ids.push_back(tok->bos_id());
  const std::vector<int32_t> enc = tok->encode(text, !a.no_special);
  ids.insert(ids.end(), enc.begin(), enc.end());
  if (a.ids_only) {
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) line += fmt::format("{}{}", i ? "," : "", ids[i]);
    fmt::print("{}\n", line);
    return;
  }
  for (int32_t id : ids)
    fmt::print("{}\t{}{}\n", id, show(tok->token_bytes(id)),
               tok->is_special(id) ? "\tspecial" : "");
}

struct BenchArgs {
  std::string model, tokenizer, file;
  double megabytes = 8;
};

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Mixed text when no --file is given: English prose, code, Chinese, numbers, whitespace runs.
std::string bench_text(size_t bytes) {
  static const char* parts[] = {
      "The quick brown fox jumps over the lazy dog; it's 3.14159 times faster than you'd think. ",
      "    for (int i = 0; i < n; ++i) {\n        sum += values[i] * 2;\n    }\n",
      "混合专家模型在一张消费级显卡上运行，冷专家从内存和固态硬盘流式传输。",
      "Numbers: 1234567890, 2024-05-01, $19.99, 0xDEADBEEF.\n\n",
      "Emoji 👍🏽 and accents: café, naïve, Ελληνικά, русский текст, "
      "العربية.\r\n",
      "def f(x):\n\treturn {'a': x, \"b\": [1, 2, 3]}\n\n\n",
  };
  std::string s;
  uint64_t r = 42;
  while (s.size() < bytes) {
    r = r * 6364136223846793005ULL + 1442695040888963407ULL;
    s += parts[(r >> 33) % std::size(parts)];
  }
  return s;
}

void run_bench(const BenchArgs& a) {
  using clock = std::chrono::steady_clock;
  const double c0 = thread_cpu_seconds();
  const auto t0 = clock::now();
  std::unique_ptr<Tokenizer> tok = load_cli_tokenizer(a.model, a.tokenizer);
  const double load_wall = std::chrono::duration<double>(clock::now() - t0).count();
  const double load_cpu = thread_cpu_seconds() - c0;
  std::string text;
  if (!a.file.empty()) {
    FILE* f = std::fopen(a.file.c_str(), "rb");
    if (!f) fail(ErrorKind::kNotFound, "--file: cannot open {}", a.file);
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
  } else {
    text = bench_text(size_t(a.megabytes * 1e6));
  }
  const double c1 = thread_cpu_seconds();
  const auto t1 = clock::now();
  const std::vector<int32_t> ids = tok->encode(text);
  const double enc_wall = std::chrono::duration<double>(clock::now() - t1).count();
  const double enc_cpu = thread_cpu_seconds() - c1;
  fmt::print("tokenizer: {} ({}, {} tokens)\n", tok->info().origin, tok->kind(), tok->vocab_size());
  fmt::print("load: {:.1f} ms wall, {:.1f} ms cpu\n", load_wall * 1e3, load_cpu * 1e3);
  fmt::print("encode: {:.2f} MB -> {} tokens, {:.1f} MB/s wall, {:.1f} MB/s cpu (one thread)\n",
             double(text.size()) / 1e6, ids.size(), double(text.size()) / 1e6 / enc_wall,
             double(text.size()) / 1e6 / enc_cpu);
}

}  // namespace

std::unique_ptr<Tokenizer> load_cli_tokenizer(const std::string& model,
                                              const std::string& tokenizer) {
  if (model.empty() == tokenizer.empty())
    fail(ErrorKind::kInvalidArgument, "give exactly one of --model PATH or --tokenizer FILE");
  if (!tokenizer.empty()) return load_tokenizer_file(tokenizer);
  auto t = load_model_tokenizer(model);
  if (!t)
    fail(ErrorKind::kNotFound,
         "--model {}: no tokenizer (tokenizer.json or tokenizer.model in a model directory, or "
         "one stored in a packed file)",
         model);
  return t;
}

void register_tokenize(CLI::App& app) {
  auto a = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the tokens of a text");
  cmd->add_option("--model,-m", a->model,
                  "Model directory or packed .cst file (its tokenizer is used)");
  cmd->add_option("--tokenizer,-t", a->tokenizer,
                  "Tokenizer file: tokenizer.json, a gguf-vocab .json or a SentencePiece .model");
  cmd->add_flag("--ids-only", a->ids_only, "Print only the ids, comma-separated");
  cmd->add_flag("--no-special", a->no_special,
                "Treat special tokens written in the text (<|im_start|>, ...) as plain text");
  cmd->add_flag("--bos", a->bos, "Prepend BOS when the tokenizer uses one");
  cmd->add_option("text", a->text, "The text ('-' reads standard input)")->required();
  cmd->callback([a] { run_tokenize(*a); });
}

void register_bench_tokenizer(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench-tokenizer",
                                     "Measure tokenizer load time and encode speed on one core");
  cmd->add_option("--model,-m", a->model,
                  "Model directory or packed .cst file (its tokenizer is used)");
  cmd->add_option("--tokenizer,-t", a->tokenizer, "Tokenizer file");
  cmd->add_option("--file", a->file, "Text to encode (default: generated mixed text)");
  cmd->add_option("--mb", a->megabytes, "Megabytes of generated text")->capture_default_str();
  cmd->callback([a] { run_bench(*a); });
}

}  // namespace cs::cli
