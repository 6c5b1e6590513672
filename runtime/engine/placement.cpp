#include "runtime/engine/placement.h"

namespace cs {
namespace {

const void* copy(Backend& b, const void* src, size_t bytes, std::vector<Buffer>& storage) {
  if (!src) return nullptr;
  storage.push_back(b.alloc(bytes));
  b.upload(storage.back().get(), src, bytes);
  return storage.back().get();
}

}  // namespace

MatView place_on(Backend& backend, const MatView& w, std::vector<Buffer>& storage) {
  if (backend.host_memory() || w.empty()) return w;
  MatView d = w;
  d.data = copy(backend, w.data, dtype_data_bytes(w.dtype, w.rows, w.cols), storage);
  const size_t groups = w.group > 0 ? size_t(w.rows) * size_t(w.cols / w.group) : 0;
  d.scales = static_cast<const uint16_t*>(copy(backend, w.scales, groups * 2, storage));
  d.mins = static_cast<const uint16_t*>(copy(backend, w.mins, groups * 2, storage));
  return d;
}

ExpertWeights place_on(Backend& backend, const ExpertWeights& w, std::vector<Buffer>& storage) {
  return {place_on(backend, w.gate, storage), place_on(backend, w.up, storage),
          place_on(backend, w.down, storage)};
}

}  // namespace cs
