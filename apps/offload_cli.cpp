#include "apps/offload_cli.h"

#include <fmt/format.h>

#include "apps/cli_common.h"
#include "common/error.h"
#include "kernels/cuda_backend.h"
#include "offload/cuda_support.h"

namespace cs::cli {

OffloadConfig OffloadFlags::resolve() const {
  OffloadConfig c;
  if (!config_file.empty()) load_offload_config(config_file, c);
  for (const Set& s : sets) set_offload_key(c, s.key, s.value, s.flag);
  return c;
}

void add_offload_flags(CLI::App* cmd, std::shared_ptr<OffloadFlags> f) {
  cmd->add_option("--config", f->config_file, "Offload configuration (TOML; see docs/CONFIG.md)")
      ->check(CLI::ExistingFile);
  // Each flag sets one configuration key; later flags win over earlier ones and over the file.
  struct Flag {
    const char* name;
    const char* key;
    const char* help;
  };
  static const Flag kFlags[] = {
      {"--vram-budget", "device.vram_budget", "GPU memory the runtime may use, e.g. 22GiB"},
      {"--backend", "device.backend", "auto, cuda or cpu"},
      {"--copy-rate", "device.copy_rate", "Host-only copy engine: cap copies at a rate (25GB/s)"},
      {"--ctx", "device.context", "KV cache length in tokens"},
      {"--host-budget", "memory.host_budget", "Host RAM for expert blobs, e.g. 100GiB (or all)"},
      {"--policy", "cache.policy", "GPU cache policy: lru, lfu or router_freq"},
      {"--allocation", "cache.allocation", "Slot allocation: global or per_layer"},
      {"--hot-set", "cache.hot_set", "Hot-set profile to pin in GPU slots"},
      {"--offload-mode", "offload.mode",
       "Misses: hybrid (cost model, both channels), cpu (all on the CPU) or stream (all copied)"},
      {"--miss-path", "cache.miss_path", "Replaced by --offload-mode"},
      {"--predictor", "predictor.kind", "Prefetch predictor: none, lookahead or coactivation"},
      {"--horizon", "predictor.horizon", "Layers the predictor looks ahead"},
      {"--threshold", "predictor.threshold", "Smallest predicted probability prefetched"},
      {"--io-depth", "io.queue_depth", "NVMe reads in flight"},
      {"--direct-io", "io.direct_io", "O_DIRECT reads: true or false"},
      {"--cpu-threads", "cpu.threads", "CPU expert threads (0: one per physical core)"},
  };
  for (const Flag& fl : kFlags) {
    const std::string key = fl.key, name = fl.name;
    cmd->add_option_function<std::string>(
        fl.name,
        [f, key, name](const std::string& v) {
          f->sets.push_back({key, v, name});
        },
        fl.help);
  }
  cmd->add_option_function<std::vector<std::string>>(
      "--set",
      [f](const std::vector<std::string>& kvs) {
        for (const std::string& kv : kvs) {
          const size_t eq = kv.find('=');
          if (eq == std::string::npos || eq == 0)
            fail(ErrorKind::kInvalidArgument,
                 "--set: expected KEY=VALUE (e.g. cache.decay=0.95), got '{}'", kv);
          f->sets.push_back({kv.substr(0, eq), kv.substr(eq + 1), "--set " + kv.substr(0, eq)});
        }
      },
      "Set any configuration key, e.g. --set cache.decay=0.95");
}

namespace {

std::vector<int> parse_cores(const std::string& list) {
  std::vector<int> out;
  size_t pos = 0;
  while (pos < list.size()) {
    size_t end = list.find(',', pos);
    if (end == std::string::npos) end = list.size();
    const std::string item = list.substr(pos, end - pos);
    const size_t dash = item.find('-');
    const int a = std::stoi(item.substr(0, dash));
    const int b = dash == std::string::npos ? a : std::stoi(item.substr(dash + 1));
    for (int c = a; c <= b; ++c) out.push_back(c);
    pos = end + 1;
  }
  return out;
}

}  // namespace

OffloadRuntime::OffloadRuntime(const Model& model, const OffloadConfig& config,
                               const std::string& device, OffloadOptions options)
    : config_(config) {
  std::string d = device;
  if (d == "auto" && config.device.backend == "cpu") d = "cpu";
  if (d == "auto" && config.device.backend == "cuda") d = fmt::format("cuda:{}", config.device.gpu);
  if (d == "auto") d = cuda_device_count() > 0 ? fmt::format("cuda:{}", config.device.gpu) : "cpu";
  if (d.rfind("cuda", 0) == 0) {
    CudaBackendOptions o;
    o.device = d.size() > 5 ? std::stoi(d.substr(5)) : 0;
    o.vram_budget = config.device.vram_budget;
    config_.device.gpu = o.device;
    device_ = make_cuda_backend(o);
  } else {
    device_ = make_backend(d);
    budgeted_ = std::make_unique<BudgetedBackend>(*device_, config.device.vram_budget);
  }
  CpuBackendOptions co;
  co.threads = config.cpu.threads;
  if (!config.cpu.cores.empty()) co.cores = parse_cores(config.cpu.cores);
  cpu_ = make_cpu_backend(co);
  options.config = config_;
  if (!options.cpu_backend) options.cpu_backend = cpu_.get();
  executor_ = std::make_unique<OffloadMoeExecutor>(backend(), model, std::move(options));
}

}  // namespace cs::cli
