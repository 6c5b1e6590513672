// Host-to-GPU copies of expert blobs on their own queue, so compute does not wait for copies it
// does not need. Two implementations: CUDA (its own stream and events; offload/cuda/) and
// host-only (memcpy on a worker thread, optionally throttled to a bandwidth), which lets the
// whole offload pipeline run and be tested on machines without a GPU.
//
// Copies run in the order they were enqueued. Tickets increase from 1; a ticket is done when its
// copy (and every copy before it) has landed.
//
// Thread-safety: one thread enqueues and waits (the executor); implementations may use their
// own threads internally.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace cs {

class CopyEngine {
 public:
  virtual ~CopyEngine() = default;
  virtual const char* name() const = 0;
  // Enqueues a copy of `bytes` from host memory `src` to backend memory `dst`.
  virtual uint64_t copy(void* dst, const void* src, size_t bytes) = 0;
  virtual bool done(uint64_t ticket) = 0;  // non-blocking
  virtual void wait(uint64_t ticket) = 0;  // blocks the calling thread until `ticket` is done
  // Copies enqueued from now on start only after the compute enqueued so far has finished
  // (the slot a copy overwrites may still be read by a running kernel). A no-op when compute is
  // synchronous (host backends).
  virtual void fence_compute() = 0;
  // The reverse: compute enqueued from now on starts only after copy `ticket` (and every copy
  // before it) has landed, without blocking the calling thread where compute is asynchronous
  // (CUDA: the compute stream waits for the copy's event). Host engines, whose compute runs
  // synchronously on the caller, wait here.
  virtual void order_compute(uint64_t ticket) = 0;
  virtual void synchronize() = 0;  // waits for every copy
  virtual uint64_t bytes_copied() const = 0;
};

struct HostCopyOptions {
  double rate = 0;    // bytes per second; 0: as fast as memcpy
  bool async = true;  // copy on a worker thread (false: inside copy())
};

std::unique_ptr<CopyEngine> make_host_copy_engine(HostCopyOptions options = {});

}  // namespace cs
