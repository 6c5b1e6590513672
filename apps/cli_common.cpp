#include "apps/cli_common.h"

#include <fmt/format.h>

#include <charconv>
#include <cstdio>

#include "common/error.h"
#include "kernels/cuda_backend.h"

namespace cs::cli {

std::vector<int32_t> parse_ids(const std::string& text, const std::string& flag) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(pos, end - pos);
    int32_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size())
      fail(ErrorKind::kInvalidArgument,
           "{}: '{}' is not a token id (expected comma-separated integers like 1,2,3)", flag, item);
    ids.push_back(v);
    pos = end + 1;
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
  if (device == "cpu") return make_cpu_backend();
  if (device == "auto") {
    std::string why;
    if (cuda_device_count(&why) > 0) return make_cuda_backend(0);
    fmt::print(stderr, "coldstream: no usable GPU ({}); running on the CPU\n", why);
    return make_cpu_backend();
  }
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (device.size() > 5) {
      auto [p, ec] = std::from_chars(device.data() + 5, device.data() + device.size(), index);
      if (ec != std::errc() || p != device.data() + device.size() || index < 0)
        fail(ErrorKind::kInvalidArgument, "--device: '{}' is not cuda:N with N a GPU index",
             device);
    }
    return make_cuda_backend(index);
  }
  fail(ErrorKind::kInvalidArgument, "--device: '{}' is not cpu, cuda, cuda:N or auto", device);
}

}  // namespace cs::cli
