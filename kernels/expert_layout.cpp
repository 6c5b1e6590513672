#include "kernels/expert_layout.h"

namespace cs {
namespace {

size_t align_up(size_t v, size_t a) {
  return (v + a - 1) / a * a;
}

MatView view(const MatLayout& m, const uint8_t* base) {
  MatView v;
  v.dtype = m.dtype;
  v.rows = m.rows;
  v.cols = m.cols;
  v.group = m.group;
  v.data = base + m.data_offset;
  if (m.dtype == DType::kQ4 || m.dtype == DType::kQ8) {
    v.scales = reinterpret_cast<const uint16_t*>(base + m.scales_offset);
    if (m.asymmetric) v.mins = reinterpret_cast<const uint16_t*>(base + m.mins_offset);
  }
  return v;
}

}  // namespace

ExpertLayout make_expert_layout(DType dtype, int64_t hidden, int64_t inter, int group,
                                bool asymmetric) {
  ExpertLayout L;
  MatLayout* mats[3] = {&L.gate, &L.up, &L.down};
  const bool quant = dtype == DType::kQ4 || dtype == DType::kQ8;
  for (MatLayout* m : mats) {
    m->dtype = dtype;
    m->group = quant ? group : 0;
    m->asymmetric = quant && asymmetric && dtype == DType::kQ4;
  }
  L.gate.rows = L.up.rows = inter;
  L.gate.cols = L.up.cols = hidden;
  L.down.rows = hidden;
  L.down.cols = inter;
  size_t off = 0;
  for (MatLayout* m : mats) {
    m->data_offset = off;
    off = align_up(off + dtype_data_bytes(dtype, m->rows, m->cols), kBlobArrayAlign);
  }
  if (quant) {
    for (MatLayout* m : mats) {
      m->scales_offset = off;
      off = align_up(off + size_t(m->rows) * size_t(m->cols / group) * 2, kBlobArrayAlign);
    }
    if (L.gate.asymmetric)
      for (MatLayout* m : mats) {
        m->mins_offset = off;
        off = align_up(off + size_t(m->rows) * size_t(m->cols / group) * 2, kBlobArrayAlign);
      }
  }
  L.bytes = align_up(off, kBlobAlign);
  return L;
}

ExpertWeights expert_views(const ExpertLayout& layout, const void* base) {
  const uint8_t* b = static_cast<const uint8_t*>(base);
  return {view(layout.gate, b), view(layout.up, b), view(layout.down, b)};
}

}  // namespace cs
