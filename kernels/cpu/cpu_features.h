// Instruction sets the fast CPU kernels are built for, and run-time detection of which one this
// CPU (and its operating system) supports. Every level is compiled into the same binary; the
// best supported one is chosen when a kernel object is made, and a lower one can be forced (tests,
// comparisons) by naming it.
//
// Thread-safety: all functions are pure or read the CPU's identification; safe from any thread.
#pragma once

#include <string_view>

namespace cs {

enum class CpuIsa : int {
  kAuto = -1,      // the best level this CPU supports
  kScalar = 0,     // portable C++, no intrinsics
  kAvx2 = 1,       // AVX2 + FMA + F16C (Haswell, Zen)
  kAvx2Vnni = 2,   // kAvx2 plus AVX-VNNI (Alder Lake and later desktops)
  kAvx512 = 3,     // AVX-512 F/BW/VL/DQ (Skylake-SP)
  kAvx512Vnni = 4  // kAvx512 plus AVX512-VNNI (Cascade Lake, Ice Lake, Sapphire Rapids, Zen 4)
};
inline constexpr int kCpuIsaCount = 5;

// The quantized kernels' default software prefetch distance, in bytes of weight codes ahead of
// the row being read (CpuMoe, CpuBackendOptions, the `cpu.prefetch` setting): the best distance
// measured on both GPU hosts' Xeons (docs/PERF.md, 2026-11-28 and session 21).
inline constexpr int kCpuPrefetchBytes = 2048;

const char* cpu_isa_name(CpuIsa isa);
// Parses a name as printed by cpu_isa_name ("auto" gives kAuto). Throws cs::Error otherwise.
CpuIsa parse_cpu_isa(std::string_view name);
// Whether this CPU and OS can run code of that level (kScalar and kAuto: always).
bool cpu_isa_supported(CpuIsa isa);
// The best supported level.
CpuIsa best_cpu_isa();
// kAuto becomes best_cpu_isa(); a named level is checked and returned. Throws cs::Error
// (kUnsupported) for a level this CPU cannot run.
CpuIsa resolve_cpu_isa(CpuIsa isa);

}  // namespace cs
