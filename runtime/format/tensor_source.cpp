#include "runtime/format/tensor_source.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace cs {

const char* file_dtype_name(FileDType t) {
  switch (t) {
    case FileDType::kF64:
      return "F64";
    case FileDType::kF32:
      return "F32";
    case FileDType::kF16:
      return "F16";
    case FileDType::kBF16:
      return "BF16";
    case FileDType::kI64:
      return "I64";
    case FileDType::kI32:
      return "I32";
    case FileDType::kI16:
      return "I16";
    case FileDType::kI8:
      return "I8";
    case FileDType::kU8:
      return "U8";
    case FileDType::kBool:
      return "BOOL";
  }
  return "?";
}

size_t file_dtype_size(FileDType t) {
  switch (t) {
    case FileDType::kF64:
    case FileDType::kI64:
      return 8;
    case FileDType::kF32:
    case FileDType::kI32:
      return 4;
    case FileDType::kF16:
    case FileDType::kBF16:
    case FileDType::kI16:
      return 2;
    case FileDType::kI8:
    case FileDType::kU8:
    case FileDType::kBool:
      return 1;
  }
  return 0;
}

int64_t TensorRef::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorRef::shape_str() const {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

}  // namespace cs
