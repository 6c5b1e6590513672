// The portable level: the generic kernels over plain arrays (simd_scalar.inc). It runs anywhere
// and computes exactly what the SIMD levels compute, up to the order of fp32 additions.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "common/half.h"
#include "kernels/cpu/simd.h"

namespace cs::cpu::scalar {

#include "kernels/cpu/simd_scalar.inc"
using Isa = ScalarT<1>;

constexpr CpuIsa kIsaLevel = CpuIsa::kScalar;
#include "kernels/cpu/simd_kernels.inc"

}  // namespace cs::cpu::scalar

namespace cs::cpu {
const CpuKernels& scalar_kernels() {
  return scalar::table();
}
}  // namespace cs::cpu
