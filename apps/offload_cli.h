// The offload engine from the command line: configuration flags shared by every subcommand that
// runs a model (--config, --vram-budget, ...), and the runtime they build (backend, budget,
// offload executor).
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "offload/budgeted_backend.h"
#include "offload/offload_config.h"
#include "runtime/engine/offload_moe_executor.h"
#include "runtime/model/model.h"

namespace cs::cli {

// What the flags collected; resolve() turns it into the effective configuration.
struct OffloadFlags {
  std::string config_file;
  struct Set {
    std::string key, value, flag;
  };
  std::vector<Set> sets;  // from flags, in order
  bool any() const { return !config_file.empty() || !sets.empty(); }
  // Defaults, then the file, then the flags (in the order given).
  OffloadConfig resolve() const;
};

// Adds --config, --vram-budget, --host-budget, --policy, --allocation, --predictor, --horizon,
// --threshold, --io-depth, --direct-io, --cpu-threads, --hot-set, --copy-rate and --set KEY=VALUE.
void add_offload_flags(CLI::App* cmd, std::shared_ptr<OffloadFlags> flags);

// The backend, wrapped in the VRAM budget, and the offload executor. Use: make it, build the
// Session on backend() with executor(), then call executor()->prepare().
class OffloadRuntime {
 public:
  // `device`: a --device value; "auto" defers to config.device.backend and config.device.gpu.
  // The CUDA backend enforces device.vram_budget itself; other backends are wrapped in a
  // BudgetedBackend that does.
  OffloadRuntime(const Model& model, const OffloadConfig& config,
                 const std::string& device = "auto", OffloadOptions options = {});
  Backend& backend() { return budgeted_ ? *budgeted_ : *device_; }
  OffloadMoeExecutor* executor() { return executor_.get(); }
  const OffloadConfig& config() const { return config_; }

 private:
  OffloadConfig config_;
  std::unique_ptr<Backend> device_;
  std::unique_ptr<BudgetedBackend> budgeted_;
  std::unique_ptr<Backend> cpu_;  // computes the experts a plan sends to the CPU
  std::unique_ptr<OffloadMoeExecutor> executor_;
};

}  // namespace cs::cli
