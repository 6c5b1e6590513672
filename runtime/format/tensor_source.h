// A named collection of tensors in files (safetensors, GGUF, packed): what a loader reads.
// Sources keep their files mapped; tensor data pointers stay valid while the source lives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cs {

// Element types as stored in files.
enum class FileDType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

const char* file_dtype_name(FileDType t);
size_t file_dtype_size(FileDType t);

struct TensorRef {
  std::string name;
  FileDType dtype = FileDType::kF32;
  std::vector<int64_t> shape;  // outermost first, as PyTorch lists it
  const uint8_t* data = nullptr;
  size_t bytes = 0;
  std::string file;  // for error messages

  int64_t numel() const;
  std::string shape_str() const;  // "[64, 128]"
};

class TensorSource {
 public:
  virtual ~TensorSource() = default;
  // nullptr when absent.
  virtual const TensorRef* find(const std::string& name) const = 0;
  virtual std::vector<std::string> names() const = 0;
  // The path the source was opened from, for messages.
  virtual const std::string& origin() const = 0;
};

}  // namespace cs
