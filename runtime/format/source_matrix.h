// A weight matrix in an input checkpoint, read row by row while converting (never whole): its
// values as floats, and, where the stored codes map onto one of our Q4/Q8 layouts without a
// second rounding (GGUF Q4_0/Q4_1/Q4_K/Q8_0, GPTQ), those codes directly.
//
// Thread-safety: sources are read-only views of mapped files; rows may be read concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "kernels/types.h"
#include "runtime/format/quant_policy.h"

namespace cs {

class SourceMatrix {
 public:
  SourceMatrix(int64_t rows, int64_t cols) : rows_(rows), cols_(cols) {}
  virtual ~SourceMatrix() = default;
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }

  // Row r as floats, out[0 .. cols).
  virtual void row_f32(int64_t r, float* out) const = 0;
  // The Q4/Q8 format the stored codes map onto without rounding them again, if any.
  virtual std::optional<TensorFormat> native() const { return std::nullopt; }
  // REQUIRES: native(). Row r in that format: codes (cols/2 or cols bytes), scales and mins
  // (cols/group fp16 each; mins only for asymmetric Q4).
  virtual void row_native(int64_t r, uint8_t* codes, uint16_t* scales, uint16_t* mins) const;

 private:
  int64_t rows_, cols_;
};

// A source over a weight view (F32/F16/BF16/Q4/Q8) in mapped memory.
std::unique_ptr<SourceMatrix> matview_source(const MatView& v);
// Row i of the result is row perm[i] of `inner`.
std::unique_ptr<SourceMatrix> permuted_rows(std::unique_ptr<SourceMatrix> inner,
                                            std::vector<int64_t> perm);

// Encodes rows [r0, r0 + n) of `src` in format `f`: `data` gets n rows (see dtype_data_bytes),
// `scales`/`mins` n * cols/group values where the format has them. Uses the stored codes when
// they fit f exactly (same format; or Q4 codes into a Q4 target whose group divides theirs,
// symmetric into asymmetric), and round-to-nearest from floats otherwise.
void encode_rows(const SourceMatrix& src, const TensorFormat& f, int64_t r0, int64_t n,
                 uint8_t* data, uint16_t* scales, uint16_t* mins);

}  // namespace cs
