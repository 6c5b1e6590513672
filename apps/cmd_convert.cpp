// `coldstream convert IN OUT`: a Hugging Face directory (F32/F16/BF16 or GPTQ-Int4), a GGUF file
// (single or split) or a packed file into a packed .cst file; or, when OUT ends in .gguf, any of
// them into a GGUF file (fixtures for other engines and tests).
#include <fmt/format.h>

#include "apps/cli_common.h"
#include "apps/progress.h"
#include "common/error.h"
#include "common/units.h"
#include "runtime/format/converter.h"
#include "runtime/format/gguf.h"
#include "runtime/format/gguf_export.h"

namespace cs::cli {
namespace {

struct ConvertArgs {
  std::string in, out, policy_file, gguf_type = "q4_0";
  std::map<std::string, std::string> classes;  // class -> format flag value
  bool force = false, requantize = false, quiet = false;
  int threads = 0;
};

uint32_t parse_ggml_type(const std::string& s) {
  static const std::pair<const char*, uint32_t> kTypes[] = {
      {"f32", kGgmlF32},   {"f16", kGgmlF16},   {"bf16", kGgmlBF16}, {"q4_0", kGgmlQ4_0},
      {"q4_1", kGgmlQ4_1}, {"q8_0", kGgmlQ8_0}, {"q4_k", kGgmlQ4_K}, {"q6_k", kGgmlQ6_K}};
  for (const auto& [name, t] : kTypes)
    if (s == name) return t;
  fail(ErrorKind::kInvalidArgument,
       "--gguf-type: '{}' is not a GGML type we write (expected f32, f16, bf16, q4_0, q4_1, q8_0, "
       "q4_k or q6_k)",
       s);
}

void run_convert(const ConvertArgs& a) {
  auto in = open_checkpoint(a.in);
  const bool to_gguf = a.out.size() > 5 && a.out.compare(a.out.size() - 5, 5, ".gguf") == 0;
  if (to_gguf) {
    GgufExportTypes t;
    t.experts = t.attention = t.embeddings = t.lm_head = t.dense = parse_ggml_type(a.gguf_type);
    export_gguf(*in, a.out, t, a.force);
    fmt::print("wrote {} (GGUF, {})\n", a.out, a.gguf_type);
    return;
  }
  ConvertOptions o;
  if (!a.policy_file.empty()) o.policy.load_toml(a.policy_file);
  for (const auto& [cls, fmt_text] : a.classes)
    if (!fmt_text.empty()) o.policy.set(cls, fmt_text, "--" + cls);
  o.policy.keep_native = o.policy.keep_native && !a.requantize;
  o.force = a.force;
  o.threads = a.threads;
  ProgressBar bar("convert", 0, "bytes", a.quiet);
  o.progress = [&](uint64_t d, uint64_t t) { bar.update(int64_t(d), int64_t(t)); };
  o.note = [&](const std::string& m) {
    if (!a.quiet) fmt::print(stderr, "note: {}\n", m);
  };
  if (!a.quiet)
    fmt::print(stderr, "converting {} ({}) with {}\n", a.in, in->kind(), o.policy.describe());
  const ConvertResult r = convert_to_packed(*in, a.out, o);
  bar.finish(int64_t(r.bytes));
  fmt::print("wrote {}: {}, experts {}\n", a.out, format_bytes(double(r.bytes)),
             format_name(r.expert_format));
}

}  // namespace

void register_convert(CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  CLI::App* cmd = app.add_subcommand(
      "convert", "Convert a Hugging Face directory, GPTQ checkpoint or GGUF file to a packed file");
  cmd->add_option("IN", a->in,
                  "Input: Hugging Face directory, GGUF file (first part if split) "
                  "or packed file")
      ->required();
  cmd->add_option("OUT", a->out, "Output packed file (.cst), or a .gguf file")->required();
  cmd->add_flag("--force", a->force, "Overwrite OUT if it exists");
  cmd->add_option("--policy", a->policy_file, "TOML quantization policy (class = \"format\")");
  for (const char* cls :
       {"experts", "attention", "embeddings", "lm_head", "dense", "norms", "routers"})
    cmd->add_option(std::string("--") + cls, a->classes[cls],
                    "Format of this class: q4/G, q4-asym/G, q8/G (G = 32, 64, 128), bf16, f16, "
                    "f32");
  cmd->add_flag("--requantize", a->requantize,
                "Requantize GGUF/GPTQ 4-bit codes to the policy instead of keeping them");
  cmd->add_option("--threads", a->threads, "Worker threads (0 = one per core)");
  cmd->add_option("--gguf-type", a->gguf_type, "GGML type of the matrices when OUT is .gguf")
      ->capture_default_str();
  cmd->add_flag("--quiet,-q", a->quiet, "No progress output");
  cmd->callback([a] { run_convert(*a); });
}

}  // namespace cs::cli
