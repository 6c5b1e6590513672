// Hardware profiles: the rates and sizes of a GPU and its host that the cost model
// (cache/cost_model.h) needs, read from a TOML file (configs/hardware/*.toml: profiles are data,
// not code) and overridable from flags. `coldstream plan` and `coldstream tune` use them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cache/cost_model.h"

namespace cs {

struct HardwareProfile {
  std::string name, origin;  // description; the file it came from (or "flags")
  uint64_t vram = 0;
  double vram_bw = 0;          // bytes/s
  double gpu_kernel_rate = 0;  // bytes/s of INT4 expert weights the decode GEMV reads
  double gpu_tflops = 0;       // effective TFLOP/s of the INT4 expert GEMM at prefill
  double pcie = 0;             // pinned host-to-GPU bytes/s
  uint64_t ram = 0;
  double ram_bw = 0;  // bytes/s, all cores
  double nvme = 0;    // bytes/s
  int cores = 0;
  // One AVX2/AVX-512 core computes Q4 experts at about this many bytes of weights per second
  // (docs/PERF.md, CPU expert GEMV); the CPU path reads min(ram_bw, cores * this).
  double cpu_core_rate = 9e9;

  // The cost model's parameters for experts of `expert_bytes`.
  CostParams cost_params(uint64_t expert_bytes) const;
  std::string describe() const;  // a few lines: every number and where it came from
};

// Names of the profiles in `dir` (file stems), sorted.
std::vector<std::string> hardware_profile_names(const std::string& dir);
// `name_or_path`: a file, or a profile name looked up in `dir`. Throws cs::Error naming the file
// and key, or listing the known names.
HardwareProfile load_hardware_profile(const std::string& name_or_path, const std::string& dir);
// Parses TOML text (keys as in configs/hardware/*.toml); absent keys keep `p`'s values.
void parse_hardware_profile(const std::string& text, const std::string& origin, HardwareProfile& p);
// The directory holding the shipped profiles: configs/hardware of the source tree the running
// executable was built in (build/apps/coldstream), or share/coldstream/hardware of its install
// prefix; the first that exists, else "".
std::string default_hardware_dir();

}  // namespace cs
