// The quantization policy of a conversion: which storage format each class of weights gets.
//
// A format is written "q4/32", "q4-asym/64", "q8/32", "bf16", "f16" or "f32" (flags and TOML use
// the same words). Norms and routers stay F32 or BF16; experts are normally Q4.
#pragma once

#include <string>
#include <string_view>

#include "kernels/types.h"
#include "runtime/model/weight_id.h"

namespace cs {

struct TensorFormat {
  DType dtype = DType::kF32;
  int group = 0;            // Q4/Q8: weights per scale, 32, 64 or 128
  bool asymmetric = false;  // Q4 only: w = d * q + m

  bool operator==(const TensorFormat&) const = default;
};

std::string format_name(const TensorFormat& f);
// Throws cs::Error (kInvalidArgument) naming `what` (a flag or a TOML key) on a bad spelling.
TensorFormat parse_tensor_format(std::string_view text, std::string_view what);

struct QuantPolicy {
  TensorFormat experts{DType::kQ4, 32, false};
  TensorFormat attention{DType::kQ8, 32, false};
  TensorFormat embeddings{DType::kQ8, 32, false};
  TensorFormat lm_head{DType::kQ8, 32, false};
  TensorFormat dense{DType::kQ8, 32, false};
  TensorFormat norms{DType::kF32, 0, false};
  TensorFormat routers{DType::kF32, 0, false};
  // Keep a GGUF or GPTQ source's own 4-bit codes for experts (no second rounding) when they map
  // onto a Q4 layout; `experts` then only applies to tensors that do not map.
  bool keep_native = true;

  TensorFormat& of(WeightClass c);
  const TensorFormat& of(WeightClass c) const;
  // Sets one class from its name ("experts", "attention", ...). Throws naming `what`.
  void set(std::string_view class_name, std::string_view format, std::string_view what);
  // Reads a TOML file of `class = "format"` lines (and keep_native = bool); unknown keys are
  // errors naming the file and the key.
  void load_toml(const std::string& path);
  // Throws when a class gets a format it cannot use (a quantized norm, say).
  void validate() const;
  std::string describe() const;  // "experts=q4/32 attention=q8/32 ..."
};

// The format actually used for a matrix with `cols` columns: the group shrinks (128 -> 64 -> 32)
// until it divides cols; a quantized format whose cols are not a multiple of 32 becomes BF16.
// `note` receives a message when the format changed.
TensorFormat fit_format(TensorFormat f, int64_t cols, std::string* note);

}  // namespace cs
