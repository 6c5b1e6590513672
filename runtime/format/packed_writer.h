// Writes a packed model file (see packed_format.h and docs/FORMAT.md) through an OutputFile.
//
// The layout is fixed up front from the tensor list and the expert format, so tensors and expert
// blobs can be written in any order and from several threads (write_expert is thread-safe;
// write_rows is for one thread). finish() fills in the checksums and commits the file.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <vector>

#include "kernels/expert_layout.h"
#include "runtime/format/output_file.h"
#include "runtime/format/packed_format.h"
#include "runtime/model/config.h"

namespace cs {

struct PackedHeaderInfo {
  ModelConfig config;
  std::optional<TokenizerBlob> tokenizer;
  nlohmann::json chat = nlohmann::json::object();        // chat template, generation settings
  nlohmann::json provenance = nlohmann::json::object();  // source, policy, tool
};

class PackedWriter {
 public:
  // `tensors` carries names, formats and shapes; their offsets are assigned here.
  PackedWriter(OutputFile& out, PackedHeaderInfo info, std::vector<PackedTensorEntry> tensors,
               TensorFormat expert_format);

  const std::vector<PackedTensorEntry>& tensors() const { return tensors_; }
  const ExpertLayout& expert_layout() const { return layout_; }
  uint64_t file_bytes() const { return file_bytes_; }

  // Rows [row0, row0 + n) of tensor `index`: n rows of codes/values, and of scales and mins
  // where the format has them.
  void write_rows(size_t index, int64_t row0, int64_t n, const void* data, const uint16_t* scales,
                  const uint16_t* mins);
  // One expert blob of expert_layout().bytes bytes. `layer` is the model's layer index.
  void write_expert(int layer, int expert, const uint8_t* blob);
  // Checksums the resident section, writes the header and commits. Throws when a blob is missing.
  void finish();

 private:
  nlohmann::json header_json() const;
  size_t moe_index(int layer) const;

  OutputFile& out_;
  PackedHeaderInfo info_;
  std::vector<PackedTensorEntry> tensors_;
  TensorFormat expert_format_;
  ExpertLayout layout_;
  std::vector<int> moe_layers_;
  uint64_t header_capacity_ = 0, tokenizer_offset_ = 0, resident_offset_ = 0, resident_bytes_ = 0;
  uint64_t experts_offset_ = 0, file_bytes_ = 0;
  uint64_t tokenizer_hash_ = 0, resident_hash_ = 0;
  std::vector<uint64_t> expert_hash_;  // [moe layer][expert]
  std::vector<uint8_t> expert_written_;
};

}  // namespace cs
