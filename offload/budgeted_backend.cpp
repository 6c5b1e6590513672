#include "offload/budgeted_backend.h"

#include <algorithm>

#include "common/error.h"
#include "common/units.h"

namespace cs {

BudgetedBackend::BudgetedBackend(Backend& inner, uint64_t limit) : inner_(inner), limit_(limit) {}

Buffer BudgetedBackend::alloc(size_t bytes) {
  if (limit_ && allocated_ + bytes > limit_)
    fail(ErrorKind::kOutOfMemory,
         "GPU memory budget exceeded: allocating {} with {} of {} already in use",
         format_bytes(double(bytes)), format_bytes(double(allocated_)),
         format_bytes(double(limit_)));
  Buffer b = inner_.alloc(bytes);
  void* p = b.get();
  live_.emplace(p, std::move(b));
  allocated_ += bytes;
  peak_ = std::max(peak_, allocated_);
  return Buffer(this, p, bytes);
}

void BudgetedBackend::free(void* ptr) {
  auto it = live_.find(ptr);
  if (it == live_.end()) return;
  allocated_ -= it->second.bytes();
  live_.erase(it);
}

}  // namespace cs
