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

size_t placed_bytes(const MatView& w) {
  if (w.empty()) return 0;
  const size_t groups = w.group > 0 ? size_t(w.rows) * size_t(w.cols / w.group) : 0;
  return dtype_data_bytes(w.dtype, w.rows, w.cols) + (w.scales ? groups * 2 : 0) +
         (w.mins ? groups * 2 : 0);
}

size_t placed_bytes(const ExpertWeights& w) {
  return placed_bytes(w.gate) + placed_bytes(w.up) + placed_bytes(w.down);
}

MatView place_stacked(Backend& backend, std::vector<MatView*> parts, std::vector<Buffer>& storage) {
  if (backend.host_memory() || parts.empty()) return {};
  const MatView& f = *parts[0];
  int64_t rows = 0;
  for (const MatView* p : parts) {
    if (p->empty() || p->dtype != f.dtype || p->cols != f.cols || p->group != f.group ||
        (p->scales == nullptr) != (f.scales == nullptr) ||
        (p->mins == nullptr) != (f.mins == nullptr))
      return {};
    rows += p->rows;
  }
  MatView s = f;
  s.rows = rows;
  const size_t data_bytes = dtype_data_bytes(f.dtype, rows, f.cols);
  const size_t group_bytes = f.group > 0 ? size_t(rows) * size_t(f.cols / f.group) * 2 : 0;
  storage.push_back(backend.alloc(data_bytes));
  uint8_t* data = storage.back().as<uint8_t>();
  uint8_t* scales = nullptr;
  uint8_t* mins = nullptr;
  if (f.scales) {
    storage.push_back(backend.alloc(group_bytes));
    scales = storage.back().as<uint8_t>();
  }
  if (f.mins) {
    storage.push_back(backend.alloc(group_bytes));
    mins = storage.back().as<uint8_t>();
  }
  s.data = data;
  s.scales = reinterpret_cast<const uint16_t*>(scales);
  s.mins = reinterpret_cast<const uint16_t*>(mins);
  size_t off = 0, goff = 0;
  for (MatView* p : parts) {
    const size_t db = dtype_data_bytes(p->dtype, p->rows, p->cols);
    const size_t gb = p->group > 0 ? size_t(p->rows) * size_t(p->cols / p->group) * 2 : 0;
    backend.upload(data + off, p->data, db);
    if (scales) backend.upload(scales + goff, p->scales, gb);
    if (mins) backend.upload(mins + goff, p->mins, gb);
    p->data = data + off;
    if (scales) p->scales = reinterpret_cast<const uint16_t*>(scales + goff);
    if (mins) p->mins = reinterpret_cast<const uint16_t*>(mins + goff);
    off += db;
    goff += gb;
  }
  return s;
}

}  // namespace cs
