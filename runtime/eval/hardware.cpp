#include "runtime/eval/hardware.h"

#include <fmt/format.h>

#include <toml++/toml.h>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/units.h"

namespace cs {
namespace fs = std::filesystem;

CostParams HardwareProfile::cost_params(uint64_t expert_bytes) const {
  CostParams c;
  c.expert_bytes = expert_bytes;
  c.copy_rate = pcie;
  c.nvme_rate = nvme;
  c.dram_rate = std::min(ram_bw, double(std::max(cores, 1)) * cpu_core_rate);
  c.gpu_rate = gpu_kernel_rate;
  return c;
}

std::string HardwareProfile::describe() const {
  return fmt::format(
      "{} ({})\n  GPU: {} memory, {:.0f} GB/s, expert GEMV {:.0f} GB/s of weights, prefill "
      "{:.0f} TFLOP/s\n  PCIe {:.1f} GB/s; host: {} RAM at {:.0f} GB/s, NVMe {:.1f} GB/s, {} cores "
      "(CPU experts at {:.0f} GB/s)\n",
      name, origin, format_bytes(double(vram)), vram_bw / 1e9, gpu_kernel_rate / 1e9, gpu_tflops,
      pcie / 1e9, format_bytes(double(ram)), ram_bw / 1e9, nvme / 1e9, cores,
      std::min(ram_bw, double(std::max(cores, 1)) * cpu_core_rate) / 1e9);
}

void parse_hardware_profile(const std::string& text, const std::string& origin,
                            HardwareProfile& p) {
  toml::table t;
  try {
    t = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    fail(ErrorKind::kBadFile, "{}:{}:{}: {}", origin, e.source().begin.line,
         e.source().begin.column, e.description());
  }
  for (const auto& [key, node] : t) {
    const std::string k(key.str());
    const std::string where = fmt::format("{}: key '{}'", origin, k);
    auto str = [&]() -> std::string {
      if (!node.is_string()) fail(ErrorKind::kBadFile, "{}: expected a string", where);
      return *node.value<std::string>();
    };
    auto num = [&]() -> double {
      if (!node.is_number()) fail(ErrorKind::kBadFile, "{}: expected a number", where);
      return *node.value<double>();
    };
    if (k == "name")
      p.name = str();
    else if (k == "vram")
      p.vram = parse_bytes(str(), where);
    else if (k == "vram_bw")
      p.vram_bw = parse_rate(str(), where);
    else if (k == "gpu_kernel_rate")
      p.gpu_kernel_rate = parse_rate(str(), where);
    else if (k == "gpu_tflops")
      p.gpu_tflops = num();
    else if (k == "pcie")
      p.pcie = parse_rate(str(), where);
    else if (k == "ram")
      p.ram = parse_bytes(str(), where);
    else if (k == "ram_bw")
      p.ram_bw = parse_rate(str(), where);
    else if (k == "nvme")
      p.nvme = parse_rate(str(), where);
    else if (k == "cores")
      p.cores = int(num());
    else if (k == "cpu_core_rate")
      p.cpu_core_rate = parse_rate(str(), where);
    else
      fail(ErrorKind::kBadFile,
           "{}: unknown key (expected name, vram, vram_bw, gpu_kernel_rate, gpu_tflops, pcie, "
           "ram, ram_bw, nvme, cores, cpu_core_rate)",
           where);
  }
  p.origin = origin;
}

std::vector<std::string> hardware_profile_names(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".toml") out.push_back(e.path().stem().string());
  std::sort(out.begin(), out.end());
  return out;
}

HardwareProfile load_hardware_profile(const std::string& name_or_path, const std::string& dir) {
  std::string path = name_or_path;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    path = (fs::path(dir) / (name_or_path + ".toml")).string();
    if (dir.empty() || !fs::is_regular_file(path, ec))
      fail(ErrorKind::kNotFound, "hardware profile '{}': no such file or profile (known: {})",
           name_or_path, fmt::join(hardware_profile_names(dir), ", "));
  }
  std::ifstream in(path);
  if (!in) fail(ErrorKind::kNotFound, "{}: cannot open the hardware profile", path);
  std::stringstream ss;
  ss << in.rdbuf();
  HardwareProfile p;
  parse_hardware_profile(ss.str(), path, p);
  for (const auto& [v, key] : {std::pair{double(p.vram), "vram"},
                               {p.pcie, "pcie"},
                               {p.gpu_kernel_rate, "gpu_kernel_rate"},
                               {double(p.ram), "ram"},
                               {p.ram_bw, "ram_bw"},
                               {double(p.cores), "cores"}})
    if (!(v > 0)) fail(ErrorKind::kBadFile, "{}: '{}' is missing or not positive", path, key);
  return p;
}

std::string default_hardware_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  const fs::path bin = exe.parent_path();
  for (const fs::path& d : {bin / ".." / ".." / "configs" / "hardware",
                            bin / ".." / "share" / "coldstream" / "hardware"})
    if (fs::is_directory(d, ec)) return d.lexically_normal().string();
  return "";
}

}  // namespace cs
