// Safetensors files and Hugging Face model directories of them, memory-mapped.
//
// Every offset, size and count in a file is checked before use (files come from the internet):
// the header length against the file size, each tensor's byte range against the data section,
// and each range's length against its shape and dtype.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/mapped_file.h"
#include "runtime/format/tensor_source.h"

namespace cs {

class SafetensorsFile {
 public:
  // Throws cs::Error (kBadFile) naming the path and what was wrong.
  explicit SafetensorsFile(const std::string& path);
  // Parses an in-memory image (the fuzzer uses this); `name` is used in messages.
  static std::map<std::string, TensorRef> parse(const uint8_t* data, size_t size,
                                                const std::string& name);

  const std::map<std::string, TensorRef>& tensors() const { return tensors_; }

 private:
  MappedFile file_;
  std::map<std::string, TensorRef> tensors_;
};

// A directory holding *.safetensors files, sharded with model.safetensors.index.json or not.
class SafetensorsDir final : public TensorSource {
 public:
  explicit SafetensorsDir(const std::string& dir);
  const TensorRef* find(const std::string& name) const override;
  std::vector<std::string> names() const override;
  const std::string& origin() const override { return dir_; }

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorRef*> index_;
};

}  // namespace cs
