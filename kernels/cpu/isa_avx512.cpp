// The AVX-512 levels of the generic kernels: F/BW/VL/DQ (maddubs) and with AVX512-VNNI.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/half.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/target_region.h"

#if !defined(__clang__)
// GCC 12's AVX-512 headers build results from _mm*_undefined_*() and trip these falsely.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

CS_TARGET_PUSH("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
namespace cs::cpu::avx512 {
#include "kernels/cpu/simd_avx2.inc"
#include "kernels/cpu/simd_avx512.inc"
using Isa = Avx512T<MaddubsDot512, Avx2T<MaddubsDot256>>;
constexpr CpuIsa kIsaLevel = CpuIsa::kAvx512;
#include "kernels/cpu/simd_kernels.inc"
}  // namespace cs::cpu::avx512
CS_TARGET_POP()

CS_TARGET_PUSH("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")
namespace cs::cpu::avx512vnni {
#include "kernels/cpu/simd_avx2.inc"
#include "kernels/cpu/simd_avx512.inc"
// AVX512-VNNI with VL also gives the 256-bit vpdpbusd, for the odd last block.
struct VnniDot256 {
  static __m256i dot(__m256i w, __m256i a) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, a);
  }
};
struct VnniDot512 {
  static __m512i dot(__m512i w, __m512i a) {
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, a);
  }
};
using Isa = Avx512T<VnniDot512, Avx2T<VnniDot256>>;
constexpr CpuIsa kIsaLevel = CpuIsa::kAvx512Vnni;
#include "kernels/cpu/simd_kernels.inc"
}  // namespace cs::cpu::avx512vnni
CS_TARGET_POP()

namespace cs::cpu {
const CpuKernels& avx512_kernels() {
  return avx512::table();
}
const CpuKernels& avx512vnni_kernels() {
  return avx512vnni::table();
}
}  // namespace cs::cpu
