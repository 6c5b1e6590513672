// Where each expert's blob lives in the packed model file: the contract between the packed-file
// reader (runtime/format, which fills it from the file header) and the offload engine (which
// reads blobs with O_DIRECT and verifies them).
//
// For every (layer, expert) of a MoE layer:
//   offset  bytes from the start of the file; a multiple of 4096 (kBlobAlign)
//   bytes   the blob size, equal to layout.bytes: a multiple of 4096, padding included
//   xxh3    XXH3_64bits (seed 0) of all `bytes` bytes of the blob, padding included
//           (padding is zero); see blob_checksum()
//   layout  where gate, up and down (data, scales, mins) sit inside the blob
//           (kernels/expert_layout.h: the same bytes in the file, in host RAM and in a GPU slot)
// Experts of dense layers, and layers without experts, have bytes == 0.
//
// When experts come from memory instead of a file (a Hugging Face directory, tests), `path` is
// empty and offsets and checksums are unused.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/expert_layout.h"

namespace cs {

struct ExpertBlobLocation {
  uint64_t offset = 0;
  uint64_t bytes = 0;
  uint64_t xxh3 = 0;
  ExpertLayout layout;
  bool present() const { return bytes > 0; }
};

struct ExpertLocator {
  std::string path;  // the packed file; empty when blobs come from memory
  int n_layers = 0, n_experts = 0;
  std::vector<ExpertBlobLocation> blobs;  // [layer * n_experts + expert]

  ExpertLocator() = default;
  ExpertLocator(std::string file, int layers, int experts)
      : path(std::move(file)),
        n_layers(layers),
        n_experts(experts),
        blobs(size_t(layers) * size_t(experts)) {}
  const ExpertBlobLocation& at(int layer, int expert) const {
    return blobs.at(size_t(layer) * size_t(n_experts) + size_t(expert));
  }
  ExpertBlobLocation& at(int layer, int expert) {
    return blobs.at(size_t(layer) * size_t(n_experts) + size_t(expert));
  }
  uint64_t max_blob_bytes() const;  // the slot size
  uint64_t total_bytes() const;     // all expert blobs
  int present_count() const;
  std::vector<int> layers_with_experts() const;  // increasing
};

// Checks the locator against a file of `file_size` bytes (or, with an empty path, only the
// layouts): alignment, sizes equal to the layouts, blobs inside the file and not overlapping.
// Throws cs::Error (kBadFile) naming the path, the layer, the expert and what was expected.
void validate_locator(const ExpertLocator& loc, uint64_t file_size);

// The blob checksum: XXH3_64bits, seed 0, over `bytes` bytes.
uint64_t blob_checksum(const void* data, size_t bytes);

}  // namespace cs
