// The offload engine from the command line: configuration flags shared by every subcommand that
// runs a model (--config, --vram-budget, ...). The runtime they build (backend, budget, offload
// executor) is runtime/engine/session_runtime.h.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "offload/offload_config.h"
#include "runtime/engine/session_runtime.h"

namespace cs::cli {

// What the flags collected; resolve() turns it into the effective configuration.
struct OffloadFlags {
  std::string config_file;
  struct Set {
    std::string key, value, flag;
  };
  std::vector<Set> sets;  // from flags, in order
  bool any() const { return !config_file.empty() || !sets.empty(); }
  // Defaults, then the file (its [chat] and [sampling] tables skipped), then the flags (in the
  // order given).
  OffloadConfig resolve() const;
  // The same as a session's runtime configuration: the offload engine is on when the file or a
  // flag sets a key beyond the device's own (runtime/engine/session_runtime.h).
  RuntimeConfig runtime(const std::string& device = "auto") const;
};

// Adds --config (-c), --vram-budget, --backend, --ctx, --host-budget, --policy, --allocation,
// --predictor, --horizon,
// --threshold, --io-depth, --direct-io, --cpu-threads, --hot-set, --copy-rate and --set KEY=VALUE.
void add_offload_flags(CLI::App* cmd, std::shared_ptr<OffloadFlags> flags);

}  // namespace cs::cli
