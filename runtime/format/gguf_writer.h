// Writes GGUF version 3 files through an OutputFile: metadata, then tensor infos, then aligned
// tensor data at offsets fixed by layout(), so data may be written in any order and from
// several threads. Used by `coldstream synth --gguf` and by tests that need GGUF fixtures.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/format/output_file.h"

namespace cs {

class GgufWriter {
 public:
  explicit GgufWriter(OutputFile& out, uint64_t alignment = 32);

  // Metadata, in the order given.
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_str(const std::string& key, const std::string& v);
  void set_strs(const std::string& key, const std::vector<std::string>& v);
  void set_i32s(const std::string& key, const std::vector<int32_t>& v);
  void set_f32s(const std::string& key, const std::vector<float>& v);

  // Declares a tensor; dims fastest first (a PyTorch [out, in] matrix is {in, out}).
  size_t add_tensor(const std::string& name, uint32_t type, std::vector<int64_t> dims);
  // Fixes offsets and writes the header. No metadata or tensors may be added afterwards.
  void layout();
  uint64_t tensor_offset(size_t i) const { return tensors_.at(i).file_offset; }
  uint64_t tensor_bytes(size_t i) const { return tensors_.at(i).bytes; }
  uint64_t file_bytes() const { return file_bytes_; }
  // Writes bytes of tensor i starting `offset` bytes into it. Thread-safe.
  void write(size_t i, uint64_t offset, const void* data, size_t n);
  void finish();  // commits the file

 private:
  struct Tensor {
    std::string name;
    uint32_t type;
    std::vector<int64_t> dims;
    uint64_t bytes = 0, rel_offset = 0, file_offset = 0;
  };
  void key(const std::string& k, uint32_t type);

  OutputFile& out_;
  uint64_t alignment_;
  std::string kv_;  // encoded metadata
  uint64_t n_kv_ = 0;
  std::vector<Tensor> tensors_;
  uint64_t file_bytes_ = 0;
};

}  // namespace cs
