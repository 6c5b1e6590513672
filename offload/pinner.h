// Page-locking host memory so the GPU's copy engine reads it directly (cudaHostRegister).
// An interface so offload/ builds and runs without CUDA (no pinner: plain memory).
#pragma once

#include <cstddef>
#include <string>

namespace cs {

class Pinner {
 public:
  virtual ~Pinner() = default;
  virtual const char* name() const = 0;
  // Page-locks [ptr, ptr + bytes). Returns false with a reason in `error` when refused.
  virtual bool pin(void* ptr, size_t bytes, std::string* error) = 0;
  virtual void unpin(void* ptr) = 0;
};

}  // namespace cs
