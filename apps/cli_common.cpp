#include "apps/cli_common.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "common/error.h"
#include "runtime/engine/session_runtime.h"

namespace cs::cli {

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> items;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t end = std::min(text.find(',', pos), text.size());
    items.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return items;
}

std::vector<int32_t> parse_ids(const std::string& text, const std::string& flag) {
  std::vector<int32_t> ids;
  for (const std::string& item : split_commas(text)) {
    int32_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size())
      fail(ErrorKind::kInvalidArgument,
           "{}: '{}' is not a token id (expected comma-separated integers like 1,2,3)", flag, item);
    ids.push_back(v);
  }
  return ids;
}

void add_device_option(CLI::App* cmd, std::string& device) {
  cmd->add_option("--device", device,
                  "Where to compute: cpu, cuda (GPU 0), cuda:N, or auto (the GPU when one is "
                  "usable, else the CPU)")
      ->capture_default_str();
}

std::unique_ptr<Backend> make_backend(const std::string& device) {
  return make_device_backend(device);
}

}  // namespace cs::cli
