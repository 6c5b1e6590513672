// kernels/cuda_backend.h in a build without the CUDA backend: every entry point says so.
#include "kernels/cuda_backend.h"

#ifndef CS_HAVE_CUDA

#include "common/error.h"

namespace cs {
namespace {

[[noreturn]] void no_cuda() {
  fail(ErrorKind::kDevice,
       "this build of coldstream has no CUDA backend (built with -DCS_CUDA=OFF or without nvcc); "
       "use --device cpu or rebuild with the CUDA toolkit");
}

}  // namespace

bool cuda_backend_built() {
  return false;
}
int cuda_device_count(std::string* reason) {
  if (reason) *reason = "this build has no CUDA backend";
  return 0;
}
CudaDeviceInfo cuda_device_info(int) {
  no_cuda();
}
std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions&) {
  no_cuda();
}
std::unique_ptr<Backend> make_cuda_backend(int) {
  no_cuda();
}
std::vector<KernelTiming> cuda_bench_copy(int, size_t, int) {
  no_cuda();
}
std::vector<KernelTiming> cuda_bench_moe_decode(int, int, int, int, int, int) {
  no_cuda();
}
std::vector<KernelTiming> cuda_bench_gemv(int, DType, int, int, int) {
  no_cuda();
}
std::vector<KernelTiming> cuda_bench_moe_prefill(int, int, int, int, int, int, int, int) {
  no_cuda();
}
std::vector<KernelTiming> cuda_bench_read(int, size_t, int) {
  no_cuda();
}
KernelTiming cuda_bench_gemm_bf16(int, int, int, int, int) {
  no_cuda();
}

}  // namespace cs

#endif  // CS_HAVE_CUDA
