#include "apps/offload_cli.h"

#include <fmt/format.h>

#include "common/error.h"

namespace cs::cli {

OffloadConfig OffloadFlags::resolve() const {
  return runtime().offload;
}

RuntimeConfig OffloadFlags::runtime(const std::string& device) const {
  RuntimeConfig c;
  c.device = device;
  if (!config_file.empty()) c.load_file(config_file);
  for (const Set& s : sets) c.set(s.key, s.value, s.flag);
  return c;
}

void add_offload_flags(CLI::App* cmd, std::shared_ptr<OffloadFlags> f) {
  cmd->add_option("--config,-c", f->config_file,
                  "Configuration (TOML: docs/CONFIG.md; [chat] and [sampling] are the chat's)")
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

}  // namespace cs::cli
