// GGUF files (version 2 and 3), memory-mapped: metadata, tensor index and tensor data.
//
// Every count, length and offset is checked before use (files come from the internet): string
// and array lengths against the bytes left, dimension products against overflow, tensor data
// against the file end. Tensors of GGML types we cannot convert are listed (so a mixed file
// opens and the conversion names the offending tensor) but have no data pointer.
// Dimensions are stored fastest-first: a PyTorch [out, in] matrix is dims {in, out}.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/mapped_file.h"

namespace cs {

// GGML tensor types that coldstream converts.
enum GgmlType : uint32_t {
  kGgmlF32 = 0,
  kGgmlF16 = 1,
  kGgmlQ4_0 = 2,
  kGgmlQ4_1 = 3,
  kGgmlQ8_0 = 8,
  kGgmlQ4_K = 12,
  kGgmlQ6_K = 14,
  kGgmlBF16 = 30,
};

// "Q4_K", "IQ2_XS", ... or "type N" for unknown numbers.
std::string ggml_type_name(uint32_t type);
bool ggml_type_supported(uint32_t type);
// Weights per block and bytes per block of a supported type.
uint32_t ggml_block_weights(uint32_t type);
uint32_t ggml_block_bytes(uint32_t type);

struct GgufTensor {
  std::string name;
  uint32_t type = 0;
  std::vector<int64_t> dims;      // fastest first
  const uint8_t* data = nullptr;  // null for unsupported types
  uint64_t bytes = 0;
  std::string file;
  int64_t numel() const;
};

struct GgufContents {
  uint32_t version = 0;
  uint64_t alignment = 32;
  nlohmann::json meta = nlohmann::json::object();  // key -> value (arrays as JSON arrays)
  std::map<std::string, GgufTensor> tensors;
};

class GgufFile {
 public:
  // Throws cs::Error (kBadFile) naming the path and what was wrong.
  explicit GgufFile(const std::string& path);
  // Parses an in-memory image (the fuzzer uses this); `name` is used in messages.
  static GgufContents parse(const uint8_t* data, size_t size, const std::string& name);
  const GgufContents& contents() const { return contents_; }

 private:
  MappedFile file_;
  GgufContents contents_;
};

// A model stored as one GGUF file or as a split set (NAME-00001-of-0000N.gguf, opened by the
// first part): metadata from the first part, tensors from all parts.
class GgufModel {
 public:
  explicit GgufModel(const std::string& path);
  const nlohmann::json& meta() const { return files_.front()->contents().meta; }
  const GgufTensor* find(const std::string& name) const;
  const std::string& path() const { return path_; }
  size_t n_files() const { return files_.size(); }

 private:
  std::string path_;
  std::vector<std::unique_ptr<GgufFile>> files_;
  std::map<std::string, const GgufTensor*> tensors_;
};

}  // namespace cs
