// Where the three matrices of one expert sit inside its blob: the same bytes in the packed
// file, in pinned host RAM and in a GPU slot, so one contiguous copy moves an expert and one
// O_DIRECT read fetches it.
//
// Blob = gate.data | up.data | down.data | gate.scales | up.scales | down.scales
//        [| gate.mins | up.mins | down.mins]   (asymmetric Q4 only)
// Each array starts on a 256-byte boundary (wide, aligned GPU and SIMD loads); the blob is
// padded to a multiple of 4096 bytes (O_DIRECT). Unquantized dtypes have only data arrays.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/types.h"

namespace cs {

inline constexpr size_t kBlobArrayAlign = 256;
inline constexpr size_t kBlobAlign = 4096;

struct MatLayout {
  DType dtype = DType::kQ4;
  int64_t rows = 0, cols = 0;
  int32_t group = 0;
  bool asymmetric = false;
  size_t data_offset = 0, scales_offset = 0, mins_offset = 0;  // bytes from the blob start
};

struct ExpertLayout {
  MatLayout gate, up, down;  // gate/up [I][H], down [H][I]
  size_t bytes = 0;          // padded size of the blob, a multiple of kBlobAlign
};

// REQUIRES: for Q4/Q8, H and I are multiples of `group` (and of 32 for Q4).
ExpertLayout make_expert_layout(DType dtype, int64_t hidden, int64_t inter, int group,
                                bool asymmetric);

// Views of the three matrices of a blob that starts at `base` (host or device memory).
ExpertWeights expert_views(const ExpertLayout& layout, const void* base);

}  // namespace cs
