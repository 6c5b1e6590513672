#include "kernels/cpu/cpu_features.h"

#include <cpuid.h>

#include <cstdint>

#include "common/error.h"

namespace cs {
namespace {

struct Features {
  bool avx2 = false, fma = false, f16c = false, avxvnni = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
};

uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

// CPUID says what the core implements; XCR0 says whether the OS saves the wider registers.
Features detect() {
  Features f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  if (!osxsave) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool ymm_os = (xcr0 & 0x6) == 0x6;
  const bool zmm_os = (xcr0 & 0xe6) == 0xe6;
  if (!ymm_os || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return Features{};
  f.avx2 = b & (1u << 5);
  f.avx512f = zmm_os && (b & (1u << 16));
  f.avx512dq = zmm_os && (b & (1u << 17));
  f.avx512bw = zmm_os && (b & (1u << 30));
  f.avx512vl = zmm_os && (b & (1u << 31));
  f.avx512vnni = zmm_os && (c & (1u << 11));
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avxvnni = a & (1u << 4);
  return f;
}

const Features& features() {
  static const Features f = detect();  // immutable facts about the machine, computed once
  return f;
}

}  // namespace

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAuto:
      return "auto";
    case CpuIsa::kScalar:
      return "scalar";
    case CpuIsa::kAvx2:
      return "avx2";
    case CpuIsa::kAvx2Vnni:
      return "avx2-vnni";
    case CpuIsa::kAvx512:
      return "avx512";
    case CpuIsa::kAvx512Vnni:
      return "avx512-vnni";
  }
  return "?";
}

CpuIsa parse_cpu_isa(std::string_view name) {
  for (int i = -1; i < kCpuIsaCount; ++i)
    if (name == cpu_isa_name(CpuIsa(i))) return CpuIsa(i);
  fail(ErrorKind::kInvalidArgument,
       "cpu instruction set '{}' is unknown (expected auto, scalar, avx2, avx2-vnni, avx512 or "
       "avx512-vnni)",
       name);
}

bool cpu_isa_supported(CpuIsa isa) {
  const Features& f = features();
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  const bool avx512 = avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
  switch (isa) {
    case CpuIsa::kAuto:
    case CpuIsa::kScalar:
      return true;
    case CpuIsa::kAvx2:
      return avx2;
    case CpuIsa::kAvx2Vnni:
      return avx2 && f.avxvnni;
    case CpuIsa::kAvx512:
      return avx512;
    case CpuIsa::kAvx512Vnni:
      return avx512 && f.avx512vnni;
  }
  return false;
}

CpuIsa best_cpu_isa() {
  for (int i = kCpuIsaCount - 1; i > 0; --i)
    if (cpu_isa_supported(CpuIsa(i))) return CpuIsa(i);
  return CpuIsa::kScalar;
}

CpuIsa resolve_cpu_isa(CpuIsa isa) {
  if (isa == CpuIsa::kAuto) return best_cpu_isa();
  if (!cpu_isa_supported(isa))
    fail(ErrorKind::kUnsupported, "cpu instruction set {} is not supported by this CPU (best: {})",
         cpu_isa_name(isa), cpu_isa_name(best_cpu_isa()));
  return isa;
}

}  // namespace cs
