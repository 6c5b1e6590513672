// The generic kernels compiled over ScalarT<2>, which reproduces the AVX-512 chunk order and
// lane layout in plain C++: the two-block paths (pair interleaving, the odd last block through
// Half, per-lane block scales) are tested on machines without AVX-512 too. Only the intrinsics
// of simd_avx512.inc themselves need an AVX-512 machine.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "common/half.h"
#include "kernels/cpu/simd.h"

namespace cs::cpu::avx512_emulation {
#include "kernels/cpu/simd_scalar.inc"
using Isa = ScalarT<2>;
constexpr CpuIsa kIsaLevel = CpuIsa::kAvx512;  // its activation order
#include "kernels/cpu/simd_kernels.inc"
}  // namespace cs::cpu::avx512_emulation

namespace cs::test {
const cpu::CpuKernels& avx512_emulation_kernels() {
  return cpu::avx512_emulation::table();
}
}  // namespace cs::test
