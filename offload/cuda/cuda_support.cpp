// CUDA runtime calls of offload/: pinning, the copy engine, device queries. No kernels.
#include <cuda_runtime.h>

#include <deque>
#include <mutex>
#include <vector>

#include "common/error.h"
#include "offload/cuda_support.h"

namespace cs {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(ErrorKind::kDevice, "{}: {}", what, cudaGetErrorString(e));
}

class CudaPinner final : public Pinner {
 public:
  const char* name() const override { return "cudaHostRegister"; }
  bool pin(void* ptr, size_t bytes, std::string* error) override {
    const cudaError_t e = cudaHostRegister(ptr, bytes, cudaHostRegisterPortable);
    if (e == cudaSuccess) return true;
    cudaGetLastError();  // clear the sticky-free error state
    if (error) *error = std::string("cudaHostRegister: ") + cudaGetErrorString(e);
    return false;
  }
  void unpin(void* ptr) override {
    cudaHostUnregister(ptr);
    cudaGetLastError();
  }
};

// One stream of its own; an event recorded after each copy. Tickets map to events in a deque
// of pending copies; completed events are recycled.
class CudaCopyEngine final : public CopyEngine {
 public:
  CudaCopyEngine(int device, void* compute_stream)
      : device_(device), compute_(static_cast<cudaStream_t>(compute_stream)) {
    check(cudaSetDevice(device_), "cudaSetDevice");
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    check(cudaEventCreateWithFlags(&fence_, cudaEventDisableTiming), "cudaEventCreate");
  }
  ~CudaCopyEngine() override {
    cudaStreamSynchronize(stream_);
    for (auto& p : pending_) cudaEventDestroy(p.event);
    for (cudaEvent_t e : free_) cudaEventDestroy(e);
    cudaEventDestroy(fence_);
    cudaStreamDestroy(stream_);
  }
  const char* name() const override { return "cuda"; }

  uint64_t copy(void* dst, const void* src, size_t bytes) override {
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
    cudaEvent_t ev;
    if (free_.empty()) {
      check(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreate");
    } else {
      ev = free_.back();
      free_.pop_back();
    }
    check(cudaEventRecord(ev, stream_), "cudaEventRecord");
    pending_.push_back({++issued_, ev});
    bytes_ += bytes;
    return issued_;
  }
  bool done(uint64_t ticket) override {
    reap(false, 0);
    return ticket <= completed_;
  }
  void wait(uint64_t ticket) override {
    if (ticket <= completed_) return;
    reap(true, ticket);
  }
  void fence_compute() override {
    check(cudaEventRecord(fence_, compute_), "cudaEventRecord (compute fence)");
    check(cudaStreamWaitEvent(stream_, fence_, 0), "cudaStreamWaitEvent");
  }
  void order_compute(uint64_t ticket) override {
    reap(false, 0);
    if (ticket <= completed_) return;
    // Copies land in order: the compute stream waits for the event of `ticket` itself.
    for (const Pending& p : pending_)
      if (p.ticket == ticket) {
        check(cudaStreamWaitEvent(compute_, p.event, 0), "cudaStreamWaitEvent (compute)");
        return;
      }
    wait(ticket);  // not a ticket of this engine's: the safe fallback
  }
  void synchronize() override {
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (copies)");
    reap(false, 0);
  }
  uint64_t bytes_copied() const override { return bytes_; }

 private:
  struct Pending {
    uint64_t ticket;
    cudaEvent_t event;
  };
  // Retires completed copies in order; with `block`, waits until `until` is retired.
  void reap(bool block, uint64_t until) {
    while (!pending_.empty()) {
      Pending& p = pending_.front();
      if (block && p.ticket <= until) {
        check(cudaEventSynchronize(p.event), "cudaEventSynchronize (copy)");
      } else {
        const cudaError_t e = cudaEventQuery(p.event);
        if (e == cudaErrorNotReady) return;
        check(e, "cudaEventQuery (copy)");
      }
      completed_ = p.ticket;
      free_.push_back(p.event);
      pending_.pop_front();
    }
  }

  int device_;
  cudaStream_t compute_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t fence_ = nullptr;
  std::deque<Pending> pending_;
  std::vector<cudaEvent_t> free_;
  uint64_t issued_ = 0, completed_ = 0, bytes_ = 0;
};

}  // namespace

bool cuda_available() {
  int n = 0;
  const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  cudaGetLastError();
  return ok;
}

std::unique_ptr<Pinner> make_cuda_pinner() {
  if (!cuda_available()) return nullptr;
  return std::make_unique<CudaPinner>();
}

std::unique_ptr<CopyEngine> make_cuda_copy_engine(int device, void* compute_stream) {
  if (!cuda_available()) fail(ErrorKind::kDevice, "CUDA copy engine: no CUDA device is visible");
  return std::make_unique<CudaCopyEngine>(device, compute_stream);
}

std::string cuda_pci_bus_id(int device) {
  char buf[32] = {};
  if (cudaDeviceGetPCIBusId(buf, sizeof buf, device) != cudaSuccess) {
    cudaGetLastError();
    return {};
  }
  return buf;
}

std::shared_ptr<void> cuda_device_alloc(int device, size_t bytes) {
  void* p = nullptr;
  if (cudaSetDevice(device) != cudaSuccess || cudaMalloc(&p, bytes) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  return std::shared_ptr<void>(p, [](void* q) { cudaFree(q); });
}

std::optional<DeviceMemoryInfo> cuda_memory_info(int device) {
  int prev = 0;
  if (cudaGetDevice(&prev) != cudaSuccess || cudaSetDevice(device) != cudaSuccess) {
    cudaGetLastError();
    return std::nullopt;
  }
  size_t free = 0, total = 0;
  const cudaError_t e = cudaMemGetInfo(&free, &total);
  cudaSetDevice(prev);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return std::nullopt;
  }
  return DeviceMemoryInfo{free, total};
}

}  // namespace cs
