// The AVX2 levels of the generic kernels: plain AVX2 (maddubs) and AVX-VNNI (vpdpbusd on ymm).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/half.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/target_region.h"

CS_TARGET_PUSH("avx2,fma,f16c")
namespace cs::cpu::avx2 {
#include "kernels/cpu/simd_avx2.inc"
using Isa = Avx2T<MaddubsDot256>;
constexpr CpuIsa kIsaLevel = CpuIsa::kAvx2;
#include "kernels/cpu/simd_kernels.inc"
}  // namespace cs::cpu::avx2
CS_TARGET_POP()

CS_TARGET_PUSH("avx2,fma,f16c,avxvnni")
namespace cs::cpu::avx2vnni {
#include "kernels/cpu/simd_avx2.inc"
struct VnniDot256 {
  static __m256i dot(__m256i w, __m256i a) {
    return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), w, a);
  }
};
using Isa = Avx2T<VnniDot256>;
constexpr CpuIsa kIsaLevel = CpuIsa::kAvx2Vnni;
#include "kernels/cpu/simd_kernels.inc"
}  // namespace cs::cpu::avx2vnni
CS_TARGET_POP()

namespace cs::cpu {
const CpuKernels& avx2_kernels() {
  return avx2::table();
}
const CpuKernels& avx2vnni_kernels() {
  return avx2vnni::table();
}
}  // namespace cs::cpu
