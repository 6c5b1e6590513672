// Who computes a layer's experts. The forward pass hands each MoE layer's routed tokens to a
// MoeExecutor; the resident executor runs every expert on the session's backend, the offload
// engine (offload/) plans hits, copies and CPU work per layer.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/backend.h"
#include "runtime/model/weights.h"

namespace cs {

class MoeExecutor {
 public:
  virtual ~MoeExecutor() = default;
  // out[T][H] = sum over each token's routed experts of weight * FFN(x). All pointers are
  // backend pointers of the session's backend; ids/weights are [T][K].
  virtual void forward(int layer, const float* x, int T, const int32_t* ids, const float* weights,
                       float* out) = 0;
};

// Every expert resident on one backend: views are placed there once (uploaded when the backend
// is not host memory) and each layer is one Backend::moe call.
class ResidentMoeExecutor final : public MoeExecutor {
 public:
  ResidentMoeExecutor(Backend& backend, const ExpertStore& store, int hidden, int k,
                      const std::vector<bool>& moe_layers);
  void forward(int layer, const float* x, int T, const int32_t* ids, const float* weights,
               float* out) override;

 private:
  Backend& backend_;
  int hidden_, k_, n_experts_;
  DType dtype_ = DType::kF32;  // every expert of a model shares one format
  int inter_ = 0;
  std::vector<Buffer> tables_;   // per layer: ExpertWeights[E] in backend memory
  std::vector<Buffer> storage_;  // uploaded weights (non-host backends)
};

}  // namespace cs
