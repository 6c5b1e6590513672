// Builds without CUDA: the CUDA pieces of offload/ report that CUDA is not available.
#include "common/error.h"
#include "offload/cuda_support.h"

namespace cs {

bool cuda_available() {
  return false;
}
std::unique_ptr<Pinner> make_cuda_pinner() {
  return nullptr;
}
std::unique_ptr<CopyEngine> make_cuda_copy_engine(int, void*) {
  fail(ErrorKind::kUnsupported, "this coldstream was built without CUDA: no CUDA copy engine");
}
std::string cuda_pci_bus_id(int) {
  return {};
}
std::shared_ptr<void> cuda_device_alloc(int, size_t) {
  return nullptr;
}
std::optional<DeviceMemoryInfo> cuda_memory_info(int) {
  return std::nullopt;
}

}  // namespace cs
