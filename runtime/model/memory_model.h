// Models built in memory, for tests and benchmarks: a quantized copy of a loaded model, and a
// model of random weights with the shapes of a config (the S30-fit benchmark shape, say) that
// needs no file. Not a file format: see runtime/format for those.
//
// Thread-safety: the functions are; the models are immutable once built.
#pragma once

#include <cstdint>
#include <memory>

#include "runtime/model/model.h"

namespace cs {

struct MemoryModelOptions {
  DType experts = DType::kQ4;  // routed experts (and dense MLP layers): Q4, Q8, BF16, F16 or F32
  DType dense = DType::kBF16;  // attention projections, embeddings, lm_head: Q4, Q8, BF16, F16, F32
  int group = 32;              // Q4/Q8 group size
  bool asymmetric = false;     // Q4 with mins
  // random_model only: seed and the spread of the router logits (larger: more skewed routing).
  uint64_t seed = 1;
  float router_scale = 1.0f;
  int threads = 0;  // 0 = hardware concurrency
};

// Every matrix of `src` converted (quantized by round-to-nearest, kernels/quant.h) to the dtypes
// of `o`; norms and routers stay F32.
std::unique_ptr<Model> quantize_model(const Model& src, const MemoryModelOptions& o);

// Random zero-mean weights with the shapes of `config` (every expert of every layer, so routing
// is real: see BENCHMARKS.md), scaled so hidden states stay near unit size through all layers.
// Q4 experts are written directly as codes 1..15 (mean 8) and per-group scales.
std::unique_ptr<Model> random_model(const ModelConfig& config, const MemoryModelOptions& o);

// Bytes of the weights of a model (non-expert and expert), as placed on a device.
struct ModelBytes {
  size_t dense = 0;       // everything but the routed experts
  size_t per_expert = 0;  // one routed expert (gate, up, down with scales)
  size_t experts = 0;     // all routed experts
};
ModelBytes model_bytes(const Model& m);

}  // namespace cs
