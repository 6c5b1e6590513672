// The CUDA pieces of offload/: pinning host memory, the CUDA copy engine, device memory queries.
// They are plain CUDA runtime calls (no kernels), built from offload/cuda/ when the project is
// built with CUDA; otherwise these functions report that CUDA is not available.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "offload/copy_engine.h"
#include "offload/pinner.h"

namespace cs {

// True when built with CUDA and at least one device is visible.
bool cuda_available();

// cudaHostRegister / cudaHostUnregister. Null when CUDA is not available.
std::unique_ptr<Pinner> make_cuda_pinner();

// Copies on a stream of its own (created on `device`), one event per copy. fence_compute()
// makes later copies wait for the work enqueued so far on `compute_stream` (a cudaStream_t;
// null means the legacy default stream). Throws cs::Error (kUnsupported) without CUDA.
std::unique_ptr<CopyEngine> make_cuda_copy_engine(int device, void* compute_stream);

// "0000:65:00.0", or empty when unknown.
std::string cuda_pci_bus_id(int device);

// Raw device memory (cudaMalloc), for measurements outside a backend (bench). Null without CUDA.
std::shared_ptr<void> cuda_device_alloc(int device, size_t bytes);

struct DeviceMemoryInfo {
  uint64_t free = 0, total = 0;
};
std::optional<DeviceMemoryInfo> cuda_memory_info(int device);

}  // namespace cs
