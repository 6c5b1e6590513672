// `coldstream info FILE`: what a packed file holds (architecture, shapes, formats and sizes per
// class, bytes per expert, what a VRAM budget holds) and, with --verify, whether every checksum
// matches. A GGUF file gets a summary of its metadata and tensor types.
#include <fmt/format.h>

#include <cstring>
#include <map>

#include "apps/cli_common.h"
#include "apps/progress.h"
#include "common/error.h"
#include "common/units.h"
#include "runtime/format/gguf.h"
#include "runtime/format/packed_reader.h"
#include "runtime/model/weight_id.h"

namespace cs::cli {
namespace {

struct InfoArgs {
  std::string file, vram_budget;
  bool verify = false;
};

void gguf_info(const std::string& path) {
  GgufModel g(path);
  const auto& m = g.meta();
  fmt::print("file: {} (GGUF, {} part{})\n", path, g.n_files(), g.n_files() > 1 ? "s" : "");
  if (m.contains("general.architecture"))
    fmt::print("architecture: {}\n", m["general.architecture"].dump());
  GgufFile first(path);
  std::map<std::string, int> types;
  for (const auto& [name, t] : first.contents().tensors) ++types[ggml_type_name(t.type)];
  fmt::print("tensor types (first part):");
  for (const auto& [name, n] : types) fmt::print(" {} x{}", name, n);
  fmt::print("\n");
}

void packed_info(const InfoArgs& a) {
  PackedFile f(a.file);
  const PackedIndex& ix = f.index();
  const ModelConfig& c = f.config();
  fmt::print("file: {} ({}, packed format v{})\n", a.file, format_bytes(double(f.size())),
             kPackedVersion);
  fmt::print("architecture: {}, {} layers ({} MoE), hidden {}, heads {}/{} x {}, vocab {}\n",
             c.model_type, c.n_layers, ix.moe_layers.size(), c.hidden_size, c.n_heads, c.n_kv_heads,
             c.head_dim, c.vocab_size);
  fmt::print("experts: {} per layer, top {}, intermediate {}\n", c.n_experts, c.n_experts_per_tok,
             c.moe_intermediate_size);
  if (auto t = f.tokenizer_blob())
    fmt::print("tokenizer: {} ({})\n", t->kind, format_bytes(double(t->bytes.size())));
  else
    fmt::print("tokenizer: none\n");
  fmt::print("chat template: {}\n", f.chat().contains("chat_template") ? "yes" : "no");
  if (ix.provenance.contains("source") || ix.provenance.contains("tool"))
    fmt::print("made by: {}\n", ix.provenance.dump());
  // Per class: formats used, tensor count, bytes.
  struct ClassInfo {
    std::map<std::string, int> formats;
    uint64_t bytes = 0;
  };
  std::map<std::string, ClassInfo> classes;
  for (const WeightId& id : non_expert_weights(c)) {
    const PackedTensorEntry& t = ix.tensors.at(canonical_name(id));
    ClassInfo& ci = classes[weight_class_name(weight_class(id.role))];
    ++ci.formats[format_name(t.format)];
    ci.bytes += t.data_bytes() + t.scale_bytes() * (t.format.asymmetric ? 2 : 1);
  }
  fmt::print("{:<12} {:>12}  formats\n", "class", "bytes");
  for (const auto& [name, ci] : classes) {
    std::string fmts;
    for (const auto& [f2, n] : ci.formats)
      fmts += fmt::format("{}{} x{}", fmts.empty() ? "" : ", ", f2, n);
    fmt::print("{:<12} {:>12}  {}\n", name, format_bytes(double(ci.bytes)), fmts);
  }
  const uint64_t blob = ix.expert_layout.bytes, n_blobs = ix.expert_xxh3.size();
  fmt::print("{:<12} {:>12}  {} x{} ({} per expert, 4 KiB-aligned blobs)\n", "experts",
             format_bytes(double(blob * n_blobs)), format_name(ix.expert_format), n_blobs,
             format_bytes(double(blob)));
  fmt::print("resident (non-expert) section: {}\n", format_bytes(double(ix.resident_bytes)));
  if (!a.vram_budget.empty()) {
    const uint64_t budget = parse_bytes(a.vram_budget, "--vram-budget");
    if (budget < ix.resident_bytes) {
      fmt::print("VRAM budget {}: too small for the resident weights ({}); no expert fits\n",
                 format_bytes(double(budget)), format_bytes(double(ix.resident_bytes)));
    } else {
      const uint64_t fit =
          blob ? std::min<uint64_t>(n_blobs, (budget - ix.resident_bytes) / blob) : 0;
      fmt::print(
          "VRAM budget {}: resident weights {} + {} of {} experts ({:.1f}%, {:.1f} per MoE "
          "layer); KV cache and scratch not counted\n",
          format_bytes(double(budget)), format_bytes(double(ix.resident_bytes)), fit, n_blobs,
          n_blobs ? 100.0 * double(fit) / double(n_blobs) : 0.0,
          ix.moe_layers.empty() ? 0.0 : double(fit) / double(ix.moe_layers.size()));
    }
  }
  if (a.verify) {
    ProgressBar bar("verify", 0, "bytes");
    f.verify_all([&](uint64_t d, uint64_t t) { bar.update(int64_t(d), int64_t(t)); });
    bar.finish(int64_t(ix.resident_bytes + blob * n_blobs));
    fmt::print("verified: resident section and all {} expert checksums match\n", n_blobs);
  }
}

void run_info(const InfoArgs& a) {
  MappedFile probe(a.file);
  if (probe.size() >= 4 && std::memcmp(probe.data(), "GGUF", 4) == 0) return gguf_info(a.file);
  packed_info(a);
}

}  // namespace

void register_info(CLI::App& app) {
  auto a = std::make_shared<InfoArgs>();
  CLI::App* cmd = app.add_subcommand("info", "Describe a packed model file (or a GGUF file)");
  cmd->add_option("FILE", a->file, "A packed .cst file or a GGUF file")->required();
  cmd->add_flag("--verify", a->verify, "Check every checksum (reads the whole file)");
  cmd->add_option("--vram-budget", a->vram_budget,
                  "Show what this much VRAM holds (e.g. 24GiB): resident weights + experts");
  cmd->callback([a] { run_info(*a); });
}

}  // namespace cs::cli
