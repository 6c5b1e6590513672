// `coldstream config --print`: the effective offload configuration (defaults, then --config,
// then flags), as TOML. Bad files and flags fail with file, line and column.
#include <fmt/format.h>

#include "apps/cli_common.h"
#include "apps/offload_cli.h"

namespace cs::cli {

void register_config(CLI::App& app) {
  auto flags = std::make_shared<OffloadFlags>();
  auto print = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "config", "Check an offload configuration and print the effective one (docs/CONFIG.md)");
  cmd->add_flag("--print", *print, "Print the effective configuration as TOML");
  add_offload_flags(cmd, flags);
  cmd->callback([flags, print] {
    const OffloadConfig c = flags->resolve();
    if (*print)
      fmt::print("{}", format_offload_config(c));
    else
      fmt::print("configuration OK{}\n",
                 flags->config_file.empty() ? "" : ": " + flags->config_file);
  });
}

}  // namespace cs::cli
