#include "runtime/format/packed_format.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <cstring>

namespace cs {

bool is_packed_magic(const uint8_t* data, size_t size) {
  return size >= sizeof(kPackedMagic) && std::memcmp(data, kPackedMagic, sizeof(kPackedMagic)) == 0;
}

uint64_t PackedTensorEntry::data_bytes() const {
  return dtype_data_bytes(format.dtype, rows, cols);
}

uint64_t PackedTensorEntry::scale_bytes() const {
  if (format.dtype != DType::kQ4 && format.dtype != DType::kQ8) return 0;
  return uint64_t(rows) * uint64_t(cols / format.group) * 2;
}

std::string checksum_hex(uint64_t h) {
  return fmt::format("{:016x}", h);
}

uint64_t xxh3(const void* data, size_t n) {
  return XXH3_64bits(data, n);
}

}  // namespace cs
