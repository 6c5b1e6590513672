// CPU expert GEMV benchmark: the experts of one MoE layer at decode (batch 1) through CpuMoe with
// all cores, in GB/s of expert weights read, next to this machine's DRAM read bandwidth measured
// by the same binary on the same threads (a multi-threaded streaming read).
//
// Defaults are Qwen3-235B-A22B's expert shapes: H 4096, I 1536, 8 experts per token, Q4 group 32.
// Weights of --layers layers (default about 1 GB) are cycled so no layer is in cache when it is
// read again. Each figure is the median of --iters runs after warm-up.
//
//   cs_bench_cpu_moe [--isa all|auto|scalar|avx2|avx2-vnni|avx512|avx512-vnni] [--threads N]
//                    [--layers N] [--iters N] [--experts N] [--tokens N] [--hidden N] [--inter N]
//                    [--dtype q4|q8] [--group 32|64|128] [--asym] [--dram-mib N]
//                    [--prefetch BYTES]  (software prefetch distance; 0 off, default 2048)
// With --isa all (the default) and no --prefetch, the best level is also run with prefetch
// distances 0, 512, 1024, 2048 and 4096 (each but the default). The last line sums up the best
// figure against the target.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "common/stats.h"
#include "kernels/cpu/cpu_moe.h"
#include "kernels/cpu/dram_probe.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/expert_layout.h"

using namespace cs;

namespace {

struct Options {
  std::string isa = "all";
  int threads = 0, layers = 0, iters = 200, experts = 8, tokens = 1;
  int64_t hidden = 4096, inter = 1536;
  DType dtype = DType::kQ4;
  int group = 32;
  bool asym = false;
  int64_t dram_mib = 1024;
  int prefetch = kCpuPrefetchBytes;
  bool prefetch_sweep = true;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "cs_bench_cpu_moe: %s (see the comment at the top of cpu_moe_bench.cpp)\n",
               why.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    auto number = [&]() -> int64_t {
      const std::string v = value();
      char* end = nullptr;
      const long long n = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end || n < 0) usage(a + " expects a non-negative integer, got " + v);
      return n;
    };
    if (a == "--isa")
      o.isa = value();
    else if (a == "--threads")
      o.threads = int(number());
    else if (a == "--layers")
      o.layers = int(number());
    else if (a == "--iters")
      o.iters = std::max<int>(1, int(number()));
    else if (a == "--experts")
      o.experts = std::max<int>(1, int(number()));
    else if (a == "--tokens")
      o.tokens = std::max<int>(1, int(number()));
    else if (a == "--hidden")
      o.hidden = number();
    else if (a == "--inter")
      o.inter = number();
    else if (a == "--group")
      o.group = int(number());
    else if (a == "--asym")
      o.asym = true;
    else if (a == "--prefetch")
      o.prefetch = int(number()), o.prefetch_sweep = false;
    else if (a == "--dram-mib")
      o.dram_mib = std::max<int64_t>(64, number());
    else if (a == "--dtype") {
      const std::string d = value();
      if (d == "q4")
        o.dtype = DType::kQ4;
      else if (d == "q8")
        o.dtype = DType::kQ8;
      else
        usage("--dtype expects q4 or q8, got " + d);
    } else
      usage("unknown argument " + a);
  }
  return o;
}

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
using Memory = std::unique_ptr<uint8_t, AlignedFree>;

Memory alloc(size_t bytes) {
  void* p = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
  if (!p) fail(ErrorKind::kOutOfMemory, "cannot allocate {} bytes", bytes);
  return Memory(static_cast<uint8_t*>(p));
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  ThreadPoolOptions po;
  po.threads = o.threads;
  ThreadPool pool(po);
  std::string cores;
  for (int c : pool.cores()) {
    if (!cores.empty()) cores += ',';
    cores += std::to_string(c);
  }
  std::printf("threads %d (cores %s), best isa %s\n", pool.size(), cores.c_str(),
              cpu_isa_name(best_cpu_isa()));

  const double dram = DramProbe(pool, size_t(o.dram_mib) << 20).rate(15) / 1e9;
  std::printf("dram read: %.1f GB/s (%lld MiB buffer, median of 15)\n", dram,
              (long long)o.dram_mib);

  // Expert blobs: `layers` x `experts`, random codes, small positive scales.
  const ExpertLayout L = make_expert_layout(o.dtype, o.hidden, o.inter, o.group, o.asym);
  const auto mat_bytes = [&](const MatLayout& m) {
    const size_t groups = size_t(m.rows) * size_t(m.cols / m.group);
    return dtype_data_bytes(m.dtype, m.rows, m.cols) + groups * 2 * (m.asymmetric ? 2 : 1);
  };
  const size_t expert_bytes = mat_bytes(L.gate) + mat_bytes(L.up) + mat_bytes(L.down);
  const int layers =
      o.layers > 0 ? o.layers
                   : int(std::max<size_t>(4, (size_t(1) << 30) / (L.bytes * size_t(o.experts))));
  const size_t total = L.bytes * size_t(o.experts) * size_t(layers);
  Memory blobs = alloc(total);
  fill_random(pool, blobs.get(), total, 2);
  const uint16_t scale = f32_to_f16(0.01f), min = f32_to_f16(-0.08f);
  std::vector<std::vector<ExpertWeights>> experts(static_cast<size_t>(layers));
  for (int l = 0; l < layers; ++l)
    for (int e = 0; e < o.experts; ++e) {
      uint8_t* b = blobs.get() + L.bytes * (size_t(l) * size_t(o.experts) + size_t(e));
      for (const MatLayout* m : {&L.gate, &L.up, &L.down}) {
        const size_t groups = size_t(m->rows) * size_t(m->cols / m->group);
        auto* s = reinterpret_cast<uint16_t*>(b + m->scales_offset);
        std::fill(s, s + groups, scale);
        if (m->asymmetric) {
          auto* mn = reinterpret_cast<uint16_t*>(b + m->mins_offset);
          std::fill(mn, mn + groups, min);
        }
      }
      experts[size_t(l)].push_back(expert_views(L, b));
    }
  std::printf(
      "experts: %s group %d%s, H %lld, I %lld, %d per layer, %d tokens, %d layers "
      "cycled (%.2f GB); %.2f MB read per expert\n",
      dtype_name(o.dtype), o.group, o.asym ? " asymmetric" : "", (long long)o.hidden,
      (long long)o.inter, o.experts, o.tokens, layers, double(total) / 1e9,
      double(expert_bytes) / 1e6);

  std::vector<float> x(size_t(o.tokens * o.hidden)), out(x.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 13) - 6) * 0.1f;
  std::vector<int32_t> rows(size_t(o.tokens));
  for (int t = 0; t < o.tokens; ++t) rows[size_t(t)] = t;
  std::vector<float> weights(size_t(o.tokens), 1.0f / float(o.experts));

  std::vector<CpuIsa> isas;
  if (o.isa == "all") {
    for (int i = 1; i < kCpuIsaCount; ++i)
      if (cpu_isa_supported(CpuIsa(i))) isas.push_back(CpuIsa(i));
  } else {
    isas.push_back(resolve_cpu_isa(parse_cpu_isa(o.isa)));
  }
  const double bytes = double(expert_bytes) * o.experts;
  auto measure = [&](CpuIsa isa, int prefetch) {
    CpuMoe moe(isa);
    moe.set_prefetch(prefetch);
    std::vector<CpuMoeTask> tasks(size_t(o.experts));
    std::vector<double> t;
    for (int it = -layers; it < o.iters; ++it) {  // one pass over all layers as warm-up
      const auto& layer = experts[size_t((it + layers) % layers)];
      for (int e = 0; e < o.experts; ++e)
        tasks[size_t(e)] = {layer[size_t(e)], rows.data(), weights.data(), o.tokens};
      const auto t0 = std::chrono::steady_clock::now();
      moe.run({x.data(), out.data(), o.tokens, int(o.hidden), false}, tasks.data(), o.experts,
              pool);
      if (it >= 0) t.push_back(seconds_since(t0));
    }
    const double s = median(t), gbs = bytes / s / 1e9;
    std::printf(
        "%-12s prefetch %4d: layer %.3f ms  %5.1f GB/s  %3.0f%% of dram read  (min %.3f "
        "ms, %d runs)\n",
        cpu_isa_name(isa), prefetch, s * 1e3, gbs, 100.0 * gbs / dram,
        *std::min_element(t.begin(), t.end()) * 1e3, o.iters);
    return gbs;
  };
  double best = 0;
  for (CpuIsa isa : isas) best = std::max(best, measure(isa, o.prefetch));
  if (o.isa == "all" && o.prefetch_sweep) {
    // The best level again with other software prefetch distances (0: hardware prefetch only).
    for (int pf : {0, 512, 1024, 2048, 4096})
      if (pf != o.prefetch) best = std::max(best, measure(isas.back(), pf));
  }
  std::printf(
      "result: best %.1f GB/s of expert weights = %.0f%% of %.1f GB/s dram read "
      "(target 75%%)\n",
      best, 100.0 * best / dram, dram);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "cs_bench_cpu_moe: %s\n", e.what());
  return 1;
}
