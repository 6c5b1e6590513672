#include "kernels/cpu/simd.h"

#include "common/error.h"

namespace cs::cpu {

const CpuKernels& scalar_kernels();
const CpuKernels& avx2_kernels();
const CpuKernels& avx2vnni_kernels();
const CpuKernels& avx512_kernels();
const CpuKernels& avx512vnni_kernels();

namespace {
int64_t align64(int64_t n) {
  return (n + 63) / 64 * 64;
}
}  // namespace

int64_t qact_bytes(int64_t C) {
  const int64_t nb = C / kQBlock;
  return align64(C) + align64(nb * 4) * 2;
}

QActRow qact_view(void* mem, int64_t C) {
  const int64_t nb = C / kQBlock;
  uint8_t* p = static_cast<uint8_t*>(mem);
  QActRow a;
  a.q = reinterpret_cast<int8_t*>(p);
  p += align64(C);
  a.s = reinterpret_cast<float*>(p);
  p += align64(nb * 4);
  a.bsum = reinterpret_cast<float*>(p);
  return a;
}

const CpuKernels& kernels_for(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar:
      return scalar_kernels();
    case CpuIsa::kAvx2:
      return avx2_kernels();
    case CpuIsa::kAvx2Vnni:
      return avx2vnni_kernels();
    case CpuIsa::kAvx512:
      return avx512_kernels();
    case CpuIsa::kAvx512Vnni:
      return avx512vnni_kernels();
    case CpuIsa::kAuto:
      break;
  }
  fail(ErrorKind::kInternal, "kernels_for: no kernel table for {}", cpu_isa_name(isa));
}

}  // namespace cs::cpu
