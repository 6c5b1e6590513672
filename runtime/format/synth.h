// Random-weight models with the exact per-layer shapes of real checkpoints, written as a packed
// file and, optionally, as a GGUF twin holding the same weights (Q4_0 experts, Q8_0 attention,
// embeddings and lm_head, F32 norms and routers, the architecture's metadata and a tokenizer
// vocabulary llama.cpp accepts), so other engines run on identical weights.
//
// Weights are zero-mean (4-bit codes uniform over 1..15, so q - 8 averages 0; 8-bit codes
// uniform over -127..127) and scaled so every matrix keeps unit variance: activations stay
// finite through all layers and tokens route to diverse experts. `skew` scales router rows so
// that expert popularity follows a Zipf(skew) law (calibrated by simulation).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/format/output_file.h"
#include "runtime/format/packed_format.h"
#include "runtime/model/config.h"

namespace cs {

// The shapes synth knows: real checkpoints, and two tiny ones for tests.
std::vector<std::string> synth_shape_names();
// The config of a shape truncated to `layers` layers (0 = all). Throws cs::Error
// (kInvalidArgument) naming --shape and listing the known shapes.
ModelConfig synth_shape(const std::string& name, int layers);

// A tokenizer vocabulary for a synthetic model: GPT-2 byte-level BPE for Qwen3 shapes (byte
// tokens, some merges, [PADn] fillers, Qwen's control tokens), SentencePiece-style for Mixtral.
struct SynthVocab {
  std::string model;  // "gpt2" or "llama"
  std::vector<std::string> tokens, merges;
  std::vector<int32_t> types;
  std::vector<float> scores;
  int32_t bos = -1, eos = -1;
};
SynthVocab synth_vocab(const ModelConfig& c);
// The vocabulary as the packed file's "gguf-vocab" tokenizer blob (JSON of GGUF tokenizer keys).
TokenizerBlob synth_vocab_blob(const SynthVocab& v);

struct SynthOptions {
  std::string shape;
  int layers = 0;
  double skew = 0;  // Zipf exponent; 0 = uniform
  uint64_t seed = 1;
  std::string out, gguf;  // gguf empty = no twin
  bool force = false;
  int threads = 0;
  std::function<void(uint64_t, uint64_t)> progress;  // bytes of both files
  PwriteFn pwrite;
};

struct SynthResult {
  ModelConfig config;
  uint64_t bytes = 0, gguf_bytes = 0;
};

SynthResult write_synth(const SynthOptions& options);

// Router row scales that make expert e's share of top-k selections follow (rank+1)^-skew,
// for n_experts experts and top-k; 1.0 everywhere when skew is 0. Deterministic for a seed.
std::vector<float> zipf_router_scales(int n_experts, int k, double skew, uint64_t seed);

}  // namespace cs
