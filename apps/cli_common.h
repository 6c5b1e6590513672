// Helpers shared by the subcommands of `coldstream`.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.h"

namespace cs::cli {

// Parses "1,2,3" into token ids; throws cs::Error naming `flag` on bad input.
std::vector<int32_t> parse_ids(const std::string& text, const std::string& flag);

// The backend a command runs on (the CPU reference until faster backends are chosen here).
std::unique_ptr<Backend> make_backend();

// Each subcommand registers itself: adds its options and sets its callback.
void register_generate(CLI::App& app);
void register_logits(CLI::App& app);
void register_convert(CLI::App& app);
void register_info(CLI::App& app);
void register_synth(CLI::App& app);

}  // namespace cs::cli
