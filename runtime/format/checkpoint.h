// An input checkpoint for conversion: its config, tokenizer, chat settings and weights by id.
// Implementations: Hugging Face directories (F32/F16/BF16 safetensors and GPTQ-Int4) and GGUF
// files (single or split). Weights are opened one at a time and read row by row, so a
// conversion never holds a model in memory.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>

#include "runtime/format/packed_format.h"
#include "runtime/format/source_matrix.h"
#include "runtime/model/config.h"
#include "runtime/model/weight_id.h"

namespace cs {

class Checkpoint {
 public:
  virtual ~Checkpoint() = default;
  virtual const ModelConfig& config() const = 0;
  virtual const std::string& origin() const = 0;
  // "safetensors", "gptq", "gguf".
  virtual std::string kind() const = 0;
  // Throws cs::Error (kNotFound, kUnsupported, kBadFile) naming the tensor.
  virtual std::unique_ptr<SourceMatrix> open(const WeightId& id) const = 0;
  virtual std::optional<TokenizerBlob> tokenizer() const = 0;
  // {"chat_template": ..., "tokenizer_config": {...}, "generation_config": {...}}; {} if none.
  virtual nlohmann::json chat() const = 0;
};

// A Hugging Face directory (config.json + *.safetensors, possibly GPTQ), a GGUF file (a split
// GGUF is named by its first part) or a packed file. Throws cs::Error naming the path.
std::unique_ptr<Checkpoint> open_checkpoint(const std::string& path);
std::unique_ptr<Checkpoint> open_hf_checkpoint(const std::string& dir);
std::unique_ptr<Checkpoint> open_gguf_checkpoint(const std::string& path);
std::unique_ptr<Checkpoint> open_packed_checkpoint(const std::string& path);

}  // namespace cs
