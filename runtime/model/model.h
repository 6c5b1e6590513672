// A loaded model: its config, its non-expert weights and its expert store, from a Hugging Face
// directory (safetensors) or, with runtime/format, a packed coldstream file.
//
// Thread-safety: a Model is immutable after load and may be shared by several sessions.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/format/tensor_source.h"
#include "runtime/model/config.h"
#include "runtime/model/weights.h"

namespace cs {

class Tokenizer;
class PackedFile;

// Whether a model path is a packed file (true) or a Hugging Face directory (false), from what it
// is: a directory, or a file's first bytes. Throws cs::Error naming the path when it does not
// exist (kNotFound), is a GGUF file (kUnsupported: convert it first) or any other file.
bool is_packed_model_path(const std::string& path);

// The tokenizer of a model path without loading its weights: tokenizer.json or tokenizer.model
// (with tokenizer_config.json) of a Hugging Face directory, or the one stored in a packed file
// (with its stored chat template and special tokens). Null when the model has none; `model_type`
// (optional) gets config.json's or the packed header's model type. Throws cs::Error for a path
// that is neither, or a damaged file.
std::unique_ptr<Tokenizer> load_model_tokenizer(const std::string& path,
                                                std::string* model_type = nullptr);

class Model {
 public:
  // Loads a Hugging Face directory or a packed .cst file (recognised by its magic). Throws
  // cs::Error naming the file and what was wrong.
  static std::unique_ptr<Model> load(const std::string& path);
  // Loads a packed file: weights are views into its mapping, experts come from a store that
  // checks each blob's checksum the first time it is used (runtime/model/packed_model.cpp).
  static std::unique_ptr<Model> load_packed(const std::string& path);
  // Builds a model over an already-open tensor source (used by the loaders above).
  static std::unique_ptr<Model> from_source(ModelConfig config,
                                            std::unique_ptr<TensorSource> source);
  // A model over weights built in memory (tests, benchmarks, quantized copies): views into memory
  // that `owner` keeps alive; experts[layer][expert] (empty rows for dense layers).
  // Validates the config; the caller vouches for the shapes.
  static std::unique_ptr<Model> from_weights(ModelConfig config, ModelWeights weights,
                                             std::vector<std::vector<ExpertWeights>> experts,
                                             std::shared_ptr<void> owner);

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const ExpertStore& experts() const { return *experts_; }
  const std::string& path() const { return path_; }
  // The tokenizer shipped with the model, or null when it has none.
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  // What the model is, in a sentence or two, when its files say (config.json
  // "coldstream_description", carried into packed files); empty otherwise.
  const std::string& description() const { return description_; }
  void set_tokenizer(std::unique_ptr<Tokenizer> t);
  // The packed file the model was loaded from (header, tokenizer blob, chat template), or null.
  const PackedFile* packed_file() const { return packed_.get(); }

  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  ~Model();

 private:
  Model() = default;
  std::string path_;
  ModelConfig config_;
  ModelWeights weights_;
  std::vector<std::unique_ptr<TensorSource>> sources_;
  std::unique_ptr<ExpertStore> experts_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::string description_;
  std::shared_ptr<void> owner_;  // from_weights: the memory the views point into
  std::shared_ptr<const PackedFile> packed_;
  friend class HfWeightBinder;
};

}  // namespace cs
