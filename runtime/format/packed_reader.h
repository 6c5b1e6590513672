// Reads a packed model file (see packed_format.h and docs/FORMAT.md), memory-mapped.
//
// Every offset, size and count in the header is checked against the file before use (files
// come from the internet): the preamble, the JSON structure and types, each tensor's arrays
// against the resident section, each expert layer against the file end and the blob layout
// against the config. Checksums are checked on request (verify_*), since reading a 100 GB file
// is the offload engine's job, not the loader's.
//
// Thread-safety: immutable after construction; all methods may be called concurrently.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/mapped_file.h"
#include "kernels/expert_layout.h"
#include "runtime/format/packed_format.h"
#include "runtime/model/config.h"

namespace cs {

// The parsed header; offsets point into the image it was parsed from.
struct PackedIndex {
  ModelConfig config;
  nlohmann::json chat, provenance;
  std::map<std::string, PackedTensorEntry> tensors;
  uint64_t resident_offset = 0, resident_bytes = 0, resident_xxh3 = 0;
  TensorFormat expert_format;
  ExpertLayout expert_layout;
  std::vector<int> moe_layers;         // model layer index of each expert layer
  std::vector<uint64_t> layer_offset;  // first blob of each expert layer
  std::vector<uint64_t> expert_xxh3;   // [moe layer][expert]
  std::optional<std::string> tokenizer_kind;
  uint64_t tokenizer_offset = 0, tokenizer_bytes = 0, tokenizer_xxh3 = 0;
};

class PackedFile {
 public:
  // Throws cs::Error (kBadFile) naming the path and the field that is wrong.
  explicit PackedFile(const std::string& path);
  // Parses and checks an in-memory image (the fuzzer uses this); `name` is used in messages.
  static PackedIndex parse(const uint8_t* data, size_t size, const std::string& name);

  const std::string& path() const { return file_.path(); }
  const PackedIndex& index() const { return index_; }
  const ModelConfig& config() const { return index_.config; }
  const uint8_t* data() const { return file_.data(); }
  uint64_t size() const { return file_.size(); }

  // The tokenizer blob (kind and bytes), or nothing when the file has none.
  struct TokenizerView {
    std::string_view kind, bytes;
  };
  std::optional<TokenizerView> tokenizer_blob() const;
  // The chat template and generation settings ({} when absent): "chat_template", "bos_token",
  // "eos_token", "generation_config"...
  const nlohmann::json& chat() const { return index_.chat; }

  // A weight view into the mapping; nullptr-data view when the tensor is absent.
  MatView tensor(const std::string& name) const;
  // The file offset of a blob; `moe_index` counts expert layers (index().moe_layers).
  uint64_t expert_offset(size_t moe_index, int expert) const;
  ExpertWeights expert(size_t moe_index, int expert) const;

  // Throws cs::Error (kBadFile) naming the layer and expert when a blob's checksum is wrong.
  void verify_expert(size_t moe_index, int expert) const;
  void verify_resident() const;
  // Verifies everything; `progress` gets (bytes done, bytes total).
  void verify_all(const std::function<void(uint64_t, uint64_t)>& progress = {}) const;

 private:
  MappedFile file_;
  PackedIndex index_;
};

}  // namespace cs
