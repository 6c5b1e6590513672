#include "offload/nvml.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <mutex>

#include "common/units.h"

namespace cs {
namespace {

// The few NVML declarations we use (nvml.h, stable ABI since NVML 2).
using nvmlReturn_t = int;
using nvmlDevice_t = void*;
struct nvmlMemory_t {
  unsigned long long total, free, used;
};
struct nvmlUtilization_t {
  unsigned int gpu, memory;
};
constexpr int kSuccess = 0;
constexpr int kTemperatureGpu = 0;

struct Nvml {
  bool ok = false;
  std::string error;
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*by_index)(unsigned int, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*util)(nvmlDevice_t, nvmlUtilization_t*) = nullptr;
  nvmlReturn_t (*name)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*temp)(nvmlDevice_t, int, unsigned int*) = nullptr;
  nvmlReturn_t (*power)(nvmlDevice_t, unsigned int*) = nullptr;
  const char* (*error_string)(nvmlReturn_t) = nullptr;
};

template <typename F>
void sym(void* lib, const char* n, F& f) {
  f = reinterpret_cast<F>(dlsym(lib, n));
}

const Nvml& nvml() {
  static Nvml n;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* e = dlerror();
      n.error = fmt::format("cannot load libnvidia-ml.so.1: {}", e ? e : "unknown error");
      return;
    }
    sym(lib, "nvmlInit_v2", n.init);
    sym(lib, "nvmlDeviceGetHandleByIndex_v2", n.by_index);
    sym(lib, "nvmlDeviceGetMemoryInfo", n.memory);
    sym(lib, "nvmlDeviceGetUtilizationRates", n.util);
    sym(lib, "nvmlDeviceGetName", n.name);
    sym(lib, "nvmlDeviceGetTemperature", n.temp);
    sym(lib, "nvmlDeviceGetPowerUsage", n.power);
    sym(lib, "nvmlErrorString", n.error_string);
    if (!n.init || !n.by_index || !n.memory || !n.util) {
      n.error = "libnvidia-ml.so.1 lacks nvmlInit_v2 or the device queries";
      return;
    }
    const nvmlReturn_t r = n.init();
    if (r != kSuccess) {
      n.error = fmt::format("nvmlInit failed: {}", n.error_string ? n.error_string(r) : "?");
      return;
    }
    n.ok = true;  // the library stays loaded for the process (NVML is not unloaded safely)
  });
  return n;
}

}  // namespace

std::optional<GpuStatus> nvml_gpu_status(int index, std::string* why) {
  const Nvml& n = nvml();
  if (!n.ok) {
    if (why) *why = n.error;
    return std::nullopt;
  }
  nvmlDevice_t d = nullptr;
  nvmlReturn_t r = n.by_index(unsigned(index), &d);
  if (r != kSuccess) {
    if (why) *why = fmt::format("device {}: {}", index, n.error_string ? n.error_string(r) : "?");
    return std::nullopt;
  }
  GpuStatus s;
  char name[96] = {};
  if (n.name && n.name(d, name, sizeof name) == kSuccess) s.name = name;
  nvmlMemory_t m{};
  if (n.memory(d, &m) == kSuccess) {
    s.memory_used = m.used;
    s.memory_total = m.total;
  }
  nvmlUtilization_t u{};
  if (n.util(d, &u) == kSuccess) {
    s.gpu_util = int(u.gpu);
    s.memory_util = int(u.memory);
  }
  unsigned int t = 0;
  if (n.temp && n.temp(d, kTemperatureGpu, &t) == kSuccess) s.temperature_c = int(t);
  unsigned int mw = 0;
  if (n.power && n.power(d, &mw) == kSuccess) s.power_w = mw / 1000.0;
  return s;
}

std::string nvml_summary(int index) {
  std::string why;
  const auto s = nvml_gpu_status(index, &why);
  if (!s) return fmt::format("GPU {}: NVML not available ({})", index, why);
  std::string out = fmt::format("GPU {} {}: {} of {} used, utilisation {}% (memory {}%)", index,
                                s->name, format_bytes(double(s->memory_used)),
                                format_bytes(double(s->memory_total)), s->gpu_util, s->memory_util);
  if (s->temperature_c >= 0) out += fmt::format(", {} C", s->temperature_c);
  if (s->power_w >= 0) out += fmt::format(", {:.0f} W", s->power_w);
  return out;
}

}  // namespace cs
