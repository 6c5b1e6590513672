// `coldstream bench`: measures the card first (device-memory copy rate), then the dense decode
// GEMVs of the S30-fit shape (and S235's Q8 attention), the INT4 MoE decode GEMV at the
// Qwen3-30B-A3B and Qwen3-235B-A22B expert shapes, MoE prefill against cuBLAS (--kernels picks
// some of these), and a whole model (a Hugging Face directory given with --model, or random
// weights built in memory at the S30-fit shape) for decode tok/s against its bandwidth bound and
// prefill against the same dense work through cuBLAS BF16. Prints a table and writes JSON.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "apps/cli_common.h"
#include "common/error.h"
#include "common/units.h"
#include "kernels/cuda_backend.h"
#include "runtime/engine/session.h"
#include "runtime/model/memory_model.h"
#include "runtime/model/weight_id.h"

namespace cs::cli {
namespace {

using nlohmann::json;

struct BenchArgs {
  int device = 0, reps = 20, layers = 48, prompt = 512, gen = 128, prefill = 2048;
  std::string model, json_path, kernel_list;
  std::vector<std::string> picked;  // kernel_list parsed (every benchmark when empty)
  bool kernels = true, whole = true;
};

// The kernel micro-benchmarks by name, in the order they run (--kernels picks some, e.g. to
// profile one with ncu). Dense GEMVs at the S30-fit shapes, and at S235's Q8 attention shapes
// (the offload path's attention chain).
struct DenseCase {
  const char* name;
  DType dt;
  int N, C;
};
constexpr DenseCase kDense[] = {
    {"dense-qkv", DType::kBF16, 5120, 2048},     {"dense-o", DType::kBF16, 2048, 4096},
    {"router", DType::kBF16, 128, 2048},         {"lm-head", DType::kBF16, 151936, 2048},
    {"lm-head-q4", DType::kQ4, 151936, 2048},    {"dense-qkv-q8-235b", DType::kQ8, 9216, 4096},
    {"dense-o-q8-235b", DType::kQ8, 4096, 8192},
};
struct MoeCase {
  const char* decode;   // name of the decode GEMV benchmark
  const char* prefill;  // name of the prefill benchmark
  const char* model;
  int H, I;
};
constexpr MoeCase kMoe[] = {{"moe-30b", "prefill-30b", "Qwen3-30B-A3B", 2048, 768},
                            {"moe-235b", "prefill-235b", "Qwen3-235B-A22B", 4096, 1536}};

std::vector<std::string> kernel_names() {
  std::vector<std::string> v;
  for (const DenseCase& d : kDense) v.push_back(d.name);
  for (const MoeCase& m : kMoe) {
    v.push_back(m.decode);
    v.push_back(m.prefill);
  }
  v.push_back("read-probe");
  return v;
}

// --kernels: a comma-separated subset of kernel_names(); empty: all. Throws naming the flag.
std::vector<std::string> parse_kernel_list(const std::string& list) {
  const std::vector<std::string> all = kernel_names();
  if (list.empty()) return all;
  const std::vector<std::string> out = split_commas(list);
  for (const std::string& n : out)
    if (std::find(all.begin(), all.end(), n) == all.end()) {
      std::string names;
      for (const std::string& x : all) names += (names.empty() ? "" : ", ") + x;
      fail(ErrorKind::kInvalidArgument, "--kernels: unknown benchmark '{}' (expected some of: {})",
           n, names);
    }
  return out;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

json timing_json(const KernelTiming& t, double bound_gbps) {
  json j = {{"name", t.name}, {"ms", t.ms}, {"bytes", t.bytes}, {"gbps", t.gbps()}};
  if (t.flops > 0) j["tflops"] = t.tflops();
  if (bound_gbps > 0 && t.bytes > 0) j["of_copy_rate"] = t.gbps() / bound_gbps;
  if (t.max_rel_err > 0) j["max_rel_err"] = t.max_rel_err;
  return j;
}

void print_timing(const KernelTiming& t, double bound) {
  fmt::print("  {:<58} {:9.4f} ms {:8.1f} GB/s", t.name, t.ms, t.gbps());
  if (bound > 0 && t.bytes > 0) fmt::print(" {:5.1f}%", 100 * t.gbps() / bound);
  if (t.flops > 0) fmt::print(" {:7.1f} TFLOP/s", t.tflops());
  if (t.max_rel_err > 0) fmt::print("  err {:.1e}", t.max_rel_err);
  fmt::print("\n");
}

// Qwen3-30B-A3B's shape (FACTS.md), depth `layers`.
ModelConfig s30_config(int layers) {
  ModelConfig c;
  c.arch = Arch::kQwen3Moe;
  c.model_type = "qwen3_moe";
  c.vocab_size = 151936;
  c.hidden_size = 2048;
  c.n_layers = layers;
  c.n_heads = 32;
  c.n_kv_heads = 4;
  c.head_dim = 128;
  c.n_experts = 128;
  c.n_experts_per_tok = 8;
  c.moe_intermediate_size = 768;
  c.intermediate_size = 6144;
  c.norm_topk_prob = true;
  c.rms_norm_eps = 1e-6f;
  c.rope_theta = 1e6;
  c.max_position_embeddings = 40960;
  c.eos_token_ids = {151645, 151643};
  return c;
}

// Routing over the first tokens of the prompt: mean normalised entropy of the per-layer expert
// histogram and the experts used per layer.
json routing_stats(Session& s, const std::vector<int32_t>& prompt) {
  const ModelConfig& c = s.transformer().config();
  std::map<int, std::vector<int>> hist;
  s.reset();
  s.transformer().set_routing_observer([&](int layer, int T, const int32_t* ids, const float*) {
    auto& h = hist[layer];
    h.resize(size_t(c.n_experts));
    for (int i = 0; i < T * c.n_experts_per_tok; ++i) ++h[ids[i]];
  });
  s.eval(prompt);
  s.transformer().set_routing_observer({});
  s.reset();
  double ent = 0, used = 0;
  for (auto& [l, h] : hist) {
    double n = 0, e = 0;
    for (int v : h) n += v;
    for (int v : h)
      if (v) e -= v / n * std::log(v / n), used += 1;
    ent += e / std::log(double(c.n_experts));
  }
  const double L = double(std::max<size_t>(1, hist.size()));
  fmt::print(
      "  routing over {} tokens: normalised entropy {:.3f}, {:.1f} of {} experts used per "
      "layer\n",
      prompt.size(), ent / L, used / L, c.n_experts);
  return {{"tokens", prompt.size()},
          {"normalised_entropy", ent / L},
          {"experts_used_per_layer", used / L},
          {"experts", c.n_experts}};
}

json bench_model(const BenchArgs& a, double bound_gbps) {
  std::unique_ptr<Model> model;
  std::string what;
  const double t0 = now_s();
  if (!a.model.empty()) {
    model = Model::load(a.model);
    what = a.model;
  } else {
    MemoryModelOptions o;
    o.experts = DType::kQ4;
    o.dense = DType::kBF16;
    o.group = 32;
    model = random_model(s30_config(a.layers), o);
    what = fmt::format(
        "S30-fit: random Qwen3-30B-A3B shape, {} layers, Q4 experts (group 32), "
        "BF16 attention/embeddings",
        a.layers);
  }
  const ModelConfig& c = model->config();
  const ModelBytes mb = model_bytes(*model);
  fmt::print("\nwhole model: {} (built in {:.1f} s)\n", what, now_s() - t0);
  CudaBackendOptions bo;
  bo.device = a.device;
  auto backend = make_cuda_backend(bo);
  std::mt19937 rng(7);
  std::vector<int32_t> prompt(size_t(a.prompt));
  for (int32_t& t : prompt) t = int32_t(rng() % uint32_t(c.vocab_size));
  json out = {{"model", what}, {"dense_bytes", mb.dense}, {"expert_bytes", mb.experts}};
  // One session for every run: the weights are placed on the GPU once.
  SessionOptions so;
  so.transformer.n_ctx = std::max(a.prompt + a.gen, a.prefill) + 8;
  so.transformer.kv_dtype = DType::kBF16;
  so.transformer.max_batch = std::max(a.prompt, a.prefill);
  const double t_up = now_s();
  Session s(*model, *backend, so);
  fmt::print("  placed on the GPU in {:.1f} s: {} in use\n", now_s() - t_up,
             format_bytes(double(backend->memory_used())));
  out["routing"] = routing_stats(
      s, std::vector<int32_t>(prompt.begin(), prompt.begin() + std::min(a.prompt, 64)));
  // Bytes a decode step must read: non-expert weights once (the embedding only one row), K
  // experts per MoE layer, and the KV cache at the mean position of the generated span.
  const int n_moe = int(cs::moe_layers(c).size());
  const ModelWeights& w = model->weights();
  const double embed_bytes = double(dtype_data_bytes(w.embed.dtype, w.embed.rows, w.embed.cols));
  const double kv_row = 2.0 * c.n_layers * c.kv_dim() * 2;  // BF16 K and V, every layer
  const double mean_pos = a.prompt + a.gen / 2.0;
  const double step_bytes = double(mb.dense) - (w.lm_head.data == w.embed.data ? 0 : embed_bytes) +
                            double(n_moe) * c.n_experts_per_tok * double(mb.per_expert) +
                            kv_row * mean_pos;
  const double bound_tps = bound_gbps * 1e9 / step_bytes;
  for (bool graphs : {true, false}) {
    s.reset();
    s.transformer().set_graphs(graphs);
    GenerateOptions g;
    g.max_tokens = graphs ? a.gen : std::min(a.gen, 32);
    g.sampling.greedy = true;
    double t_first = 0;
    int n = 0;
    const double t1 = now_s();
    s.generate(prompt, g, [&](int32_t) {
      if (n++ == 0) t_first = now_s();
      return true;
    });
    const double t2 = now_s();
    const double tps = (n - 1) / (t2 - t_first);
    const std::string key = graphs ? "decode_graphs" : "decode_no_graphs";
    out[key] = {{"tokens", n},
                {"tok_per_s", tps},
                {"ttft_s", t_first - t1},
                {"bound_tok_per_s", bound_tps},
                {"of_bound", tps / bound_tps},
                {"step_bytes", step_bytes}};
    fmt::print(
        "  decode ({}): {:.1f} tok/s, {:.1f}% of the bound {:.1f} tok/s ({} per token); "
        "TTFT {:.1f} ms for {} prompt tokens\n",
        graphs ? "CUDA graphs" : "no graphs", tps, 100 * tps / bound_tps, bound_tps,
        format_bytes(step_bytes), 1e3 * (t_first - t1), a.prompt);
  }
  if (a.prefill > 0) {
    s.reset();
    std::vector<int32_t> p(size_t(a.prefill));
    for (int32_t& t : p) t = int32_t(rng() % uint32_t(c.vocab_size));
    // A first run at full length as warm-up (scratch buffers sized for T, cuBLAS heuristics and
    // kernel modules loaded for these shapes), then the median of three.
    std::vector<double> runs;
    for (int i = 0; i < 4; ++i) {
      s.reset();
      const double t1 = now_s();
      s.eval(p);
      if (i > 0) runs.push_back(1e3 * (now_s() - t1));
    }
    std::sort(runs.begin(), runs.end());
    const double ms = runs[1];
    // The same dense work through cuBLAS BF16: q/k/v/o per layer and the experts as one GEMM.
    const int T = a.prefill, H = c.hidden_size, I = c.moe_intermediate_size;
    const int P = T * c.n_experts_per_tok;
    double ref = 0;
    ref += c.n_layers * cuda_bench_gemm_bf16(a.device, T, c.q_dim() + 2 * c.kv_dim(), H, 5).ms;
    ref += c.n_layers * cuda_bench_gemm_bf16(a.device, T, H, c.q_dim(), 5).ms;
    ref += n_moe * cuda_bench_gemm_bf16(a.device, P, 2 * I, H, 5).ms;
    ref += n_moe * cuda_bench_gemm_bf16(a.device, P, H, I, 5).ms;
    out["prefill"] = {{"tokens", T},
                      {"ms", ms},
                      {"tok_per_s", T / ms * 1e3},
                      {"cublas_bf16_dense_ms", ref},
                      {"ratio_to_cublas", ms / ref}};
    fmt::print(
        "  prefill {} tokens: {:.1f} ms ({:.0f} tok/s); the same dense GEMMs through cuBLAS "
        "BF16: {:.1f} ms; ratio {:.2f} (target <= 1.5)\n",
        T, ms, T / ms * 1e3, ref, ms / ref);
  }
  return out;
}

void run_bench(const BenchArgs& a) {
  std::string why;
  if (cuda_device_count(&why) == 0) fail(ErrorKind::kDevice, "bench: needs a CUDA GPU ({})", why);
  const CudaDeviceInfo info = cuda_device_info(a.device);
  fmt::print("device {}: {} (sm_{}{}, {} SMs, {} memory, {} L2)\n", a.device, info.name,
             info.cc_major, info.cc_minor, info.sm_count, format_bytes(double(info.total_memory)),
             format_bytes(double(info.l2_bytes)));
  json out = {{"device", info.name}, {"sm_count", info.sm_count}};
  // 1. The card: device-memory copy rate, the bound everything else is measured against.
  const auto copy = cuda_bench_copy(a.device, size_t(1) << 30, a.reps);
  double bound = 0;
  fmt::print("\ndevice memory (1 GiB copy, read + write):\n");
  for (const auto& t : copy) {
    print_timing(t, 0);
    bound = std::max(bound, t.gbps());
    out["copy"].push_back(timing_json(t, 0));
  }
  out["copy_gbps"] = bound;
  if (a.kernels) {
    auto picked = [&](const char* n) {
      return std::find(a.picked.begin(), a.picked.end(), n) != a.picked.end();
    };
    // Dense decode GEMVs (weights rotated past L2 in a CUDA graph).
    bool header = false;
    for (const DenseCase& d : kDense) {
      if (!picked(d.name)) continue;
      if (!header) fmt::print("\ndense decode GEMV (T = 1):\n");
      header = true;
      for (const auto& t : cuda_bench_gemv(a.device, d.dt, d.N, d.C, a.reps)) {
        print_timing(t, bound);
        out["dense_decode"].push_back(timing_json(t, bound));
      }
    }
    for (const MoeCase& m : kMoe) {
      if (picked(m.decode)) {
        fmt::print("\nINT4 MoE decode GEMV, {} (8 experts of 3 x {} x {}, group 32):\n", m.model,
                   m.H, m.I);
        for (const auto& t : cuda_bench_moe_decode(a.device, m.H, m.I, 8, 32, a.reps)) {
          print_timing(t, bound);
          out["moe_decode"][m.model].push_back(timing_json(t, bound));
        }
      }
      if (picked(m.prefill) && a.prefill > 0) {
        const int T = m.H == 2048 ? a.prefill : std::min(a.prefill, 1024);
        fmt::print("MoE prefill, {}, {} tokens, 128 experts, top-8:\n", m.model, T);
        for (const auto& t :
             cuda_bench_moe_prefill(a.device, T, m.H, m.I, 128, 8, 32, std::max(3, a.reps / 4))) {
          print_timing(t, bound);
          out["moe_prefill"][m.model].push_back(timing_json(t, bound));
        }
      }
    }
    // Read rate against memory-level parallelism, at an S30 MoE layer's bytes and at 200 MB.
    if (picked("read-probe"))
      for (const size_t mb : {20, 200}) {
        fmt::print("\nread probe, {} MB per launch (reads only; % of the copy rate):\n", mb);
        for (const auto& t : cuda_bench_read(a.device, mb * 1000 * 1000, a.reps)) {
          print_timing(t, bound);
          out["read_probe"][std::to_string(mb) + "MB"].push_back(timing_json(t, bound));
        }
      }
  }
  if (a.whole) out["model"] = bench_model(a, bound);
  const std::string text = out.dump(2);
  if (!a.json_path.empty()) {
    std::ofstream f(a.json_path);
    if (!f) fail(ErrorKind::kIo, "--json: cannot write {}", a.json_path);
    f << text << "\n";
  }
}

}  // namespace

void register_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Measure the GPU: copy rate, INT4 MoE kernels against it, whole-model decode/prefill");
  cmd->add_option("--gpu", a->device, "GPU index")->capture_default_str();
  cmd->add_option("--model,-m", a->model,
                  "A Hugging Face model directory; default: random S30-fit weights in memory");
  cmd->add_option("--layers", a->layers, "Layers of the in-memory S30-fit model")
      ->capture_default_str()
      ->check(CLI::Range(1, 48));
  cmd->add_option("--prompt", a->prompt, "Prompt tokens before decoding")->capture_default_str();
  cmd->add_option("--gen", a->gen, "Tokens to decode")
      ->capture_default_str()
      ->check(CLI::Range(2, 100000));
  cmd->add_option("--prefill", a->prefill, "Prefill length (0: skip)")->capture_default_str();
  cmd->add_option("--reps", a->reps, "Timed repetitions per kernel (median)")
      ->capture_default_str()
      ->check(CLI::Range(3, 10000));
  cmd->add_option("--json", a->json_path, "Write the results as JSON to this file");
  cmd->add_flag("!--no-kernels", a->kernels, "Skip the kernel micro-benchmarks");
  cmd->add_option("--kernels", a->kernel_list,
                  "Only these micro-benchmarks, comma-separated (e.g. moe-30b,dense-o; "
                  "tools/ncu_decode.sh profiles them one at a time)");
  cmd->add_flag("!--no-model", a->whole, "Skip the whole-model benchmark");
  cmd->callback([a] {
    a->picked = parse_kernel_list(a->kernel_list);  // a bad name: an error before any GPU work
    run_bench(*a);
  });
}

}  // namespace cs::cli
