// Random-weight models with the per-layer shapes of real checkpoints, built in memory for
// `coldstream bench` when no model file is given: non-expert weights BF16 (random, zero mean),
// experts INT4 (zero-mean codes, see BENCHMARKS.md) written to a scratch blob file that the
// offload engine reads like a packed file. Router rows can be skewed so expert popularity
// follows a power law. Not a file format: `coldstream synth` (the packed writer) makes real ones.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "offload/expert_locator.h"
#include "runtime/model/model.h"

namespace cs::cli {

struct SyntheticSpec {
  std::string shape = "tiny";  // tiny, qwen3-30b-a3b, qwen3-235b-a22b, mixtral-8x7b
  int layers = 0;              // 0: the shape's
  int vocab = 0;               // 0: the shape's
  double skew = 0;             // router row e scaled by (e + 1)^-skew: 0 is uniform routing
  uint64_t seed = 1;
  int q4_group = 32;
};

struct SyntheticModel {
  std::unique_ptr<Model> model;
  ExpertLocator locator;  // the blob file in the scratch directory
};

// Throws cs::Error naming the shape when unknown. `log` reports progress.
SyntheticModel make_synthetic_model(const SyntheticSpec& spec, const std::string& scratch_dir,
                                    const std::function<void(const std::string&)>& log);

}  // namespace cs::cli
