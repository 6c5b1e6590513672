#include "kernels/backend.h"

#include <utility>

namespace cs {

Buffer::~Buffer() {
  if (owner_ && ptr_) owner_->free(ptr_);
}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    if (owner_ && ptr_) owner_->free(ptr_);
    owner_ = std::exchange(o.owner_, nullptr);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

}  // namespace cs
