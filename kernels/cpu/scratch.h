// Growable 64-byte-aligned scratch memory for the fast CPU paths (internal to kernels/cpu).
// Thread-safety: none; one owner.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>

#include "common/error.h"

namespace cs::cpu {

class Scratch {
 public:
  // At least `bytes` bytes, 64-byte aligned; contents are not preserved when it grows.
  void* get(size_t bytes) {
    if (bytes > size_) {
      const size_t n = (bytes + 63) / 64 * 64;
      void* p = std::aligned_alloc(64, n);
      if (!p) fail(ErrorKind::kOutOfMemory, "cpu kernels: cannot allocate {} bytes of scratch", n);
      mem_.reset(static_cast<std::byte*>(p));
      size_ = n;
    }
    return mem_.get();
  }

 private:
  struct Free {
    void operator()(std::byte* p) const { std::free(p); }
  };
  std::unique_ptr<std::byte, Free> mem_;
  size_t size_ = 0;
};

}  // namespace cs::cpu
