// Host-side helpers of the CUDA backend: turning CUDA and cuBLAS status codes into cs::Error
// values that name the operation, and RAII wrappers for device memory used by benchmarks.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <utility>

#include "common/error.h"

namespace cs::cuda {

inline void check(cudaError_t e, const char* op) {
  if (e != cudaSuccess)
    fail(ErrorKind::kDevice, "cuda backend: {}: {} ({})", op, cudaGetErrorString(e),
         cudaGetErrorName(e));
}

inline void check_blas(cublasStatus_t s, const char* op) {
  if (s != CUBLAS_STATUS_SUCCESS)
    fail(ErrorKind::kDevice, "cuda backend: {}: cuBLAS status {}", op, int(s));
}

// Device memory owned by one scope (benchmarks and tests of this folder).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    check(cudaMalloc(&ptr_, bytes ? bytes : 1), "cudaMalloc");
  }
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  template <typename T = void>
  T* get() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace cs::cuda
