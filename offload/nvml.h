// GPU monitoring through NVML (memory used and total, utilisation, temperature, power), loaded at
// run time with dlopen("libnvidia-ml.so.1"): no build dependency, and on machines without the
// NVIDIA driver every query says "NVML not available". `coldstream bench-offload` and chat's
// /stats print nvml_summary() next to the runtime's own telemetry.
//
// Thread-safety: the library is loaded once (std::call_once); queries may run on any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace cs {

struct GpuStatus {
  std::string name;
  uint64_t memory_used = 0, memory_total = 0;  // bytes
  int gpu_util = 0, memory_util = 0;           // percent over the driver's last sample period
  int temperature_c = -1;                      // -1: not reported
  double power_w = -1;                         // -1: not reported
};

// Status of GPU `index`; nullopt (with `why` set) when NVML or the device is not available.
std::optional<GpuStatus> nvml_gpu_status(int index, std::string* why = nullptr);

// One line: "GPU 0 NVIDIA H200: 12.3 GiB of 139.8 GiB used, utilisation 87% (memory 41%), 54 C,
// 312 W", or "GPU 0: NVML not available (...)".
std::string nvml_summary(int index = 0);

}  // namespace cs
