#include <doctest/doctest.h>

#include <initializer_list>

#include "kernels/expert_layout.h"

using namespace cs;

TEST_CASE("expert blob layout: aligned arrays, 4 KiB blobs, views at the offsets") {
  // Qwen3-235B-A22B expert: H = 4096, I = 1536, Q4 group 64, asymmetric.
  const ExpertLayout L = make_expert_layout(DType::kQ4, 4096, 1536, 64, true);
  CHECK(L.bytes % kBlobAlign == 0);
  for (const MatLayout* m : {&L.gate, &L.up, &L.down}) {
    CHECK(m->data_offset % kBlobArrayAlign == 0);
    CHECK(m->scales_offset % kBlobArrayAlign == 0);
    CHECK(m->mins_offset % kBlobArrayAlign == 0);
  }
  const size_t weights = 3ull * 4096 * 1536;
  CHECK(L.bytes >= weights / 2 + weights / 64 * 4);
  CHECK(L.bytes < weights / 2 + weights / 64 * 4 + 3 * 3 * kBlobArrayAlign + kBlobAlign);
  const ExpertWeights w = expert_views(L, reinterpret_cast<const void*>(uintptr_t(0x100000)));
  CHECK(w.down.rows == 4096);
  CHECK(w.down.cols == 1536);
  CHECK(w.gate.mins != nullptr);
  CHECK(reinterpret_cast<uintptr_t>(w.up.data) == 0x100000 + L.up.data_offset);
  const ExpertLayout S = make_expert_layout(DType::kQ4, 64, 32, 32, false);
  CHECK(S.gate.mins_offset == 0);
  static const uint8_t blob[1] = {};
  CHECK(expert_views(S, blob).gate.mins == nullptr);
}
