#include "kernels/types.h"

namespace cs {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kQ8:
      return "Q8";
    case DType::kQ4:
      return "Q4";
  }
  return "?";
}

size_t dtype_data_bytes(DType t, int64_t rows, int64_t cols) {
  const size_t n = size_t(rows) * size_t(cols);
  switch (t) {
    case DType::kF32:
      return n * 4;
    case DType::kF16:
    case DType::kBF16:
      return n * 2;
    case DType::kQ8:
      return n;
    case DType::kQ4:
      return n / 2;
  }
  return 0;
}

}  // namespace cs
