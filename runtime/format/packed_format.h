// The coldstream packed model file (.cst): definitions shared by its writer and its reader.
// docs/FORMAT.md is the specification; this header is its code.
//
//   [preamble, 32 bytes][JSON header, space-padded][tokenizer blob][resident tensors][expert blobs]
//    preamble = magic "CSTPACK\0" | u32 version | u32 0 | u64 header offset (32) | u64 header bytes
// Every section after the preamble starts on a 4096-byte boundary; every expert blob is
// 4096-aligned and a multiple of 4096 bytes (one O_DIRECT read). All offsets are absolute.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/format/quant_policy.h"

namespace cs {

inline constexpr char kPackedMagic[8] = {'C', 'S', 'T', 'P', 'A', 'C', 'K', '\0'};
inline constexpr uint32_t kPackedVersion = 1;
inline constexpr size_t kPackedPreambleBytes = 32;
inline constexpr size_t kPackedSectionAlign = 4096;

// True when the bytes start with the packed magic.
bool is_packed_magic(const uint8_t* data, size_t size);

// One non-expert tensor: its format, shape and where its arrays are in the file.
struct PackedTensorEntry {
  std::string name;  // canonical_name() of its WeightId
  TensorFormat format;
  int64_t rows = 0, cols = 0;
  uint64_t data = 0, scales = 0, mins = 0;  // absolute offsets; scales/mins 0 when absent

  uint64_t data_bytes() const;
  uint64_t scale_bytes() const;  // bytes of the scales array, and of the mins array if any
};

// The tokenizer as stored: a kind (see runtime/tokenizer/tokenizer.h) and its bytes.
struct TokenizerBlob {
  std::string kind;
  std::string bytes;
};

// Checksums are XXH3-64 of the bytes, written as 16 lowercase hex digits (fixed width, so the
// header keeps its size when the writer fills them in after the data).
std::string checksum_hex(uint64_t h);
uint64_t xxh3(const void* data, size_t n);

inline uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

}  // namespace cs
