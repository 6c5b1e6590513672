// The weights of a model as views (see kernels/types.h), and the expert store interface.
//
// Non-expert weights are owned by the model (mapped files). Expert weights are reached only
// through an ExpertStore, because the offload engine decides where each expert lives.
#pragma once

#include <vector>

#include "kernels/types.h"

namespace cs {

struct LayerWeights {
  MatView attn_norm;       // [1][H]
  MatView wq, wk, wv, wo;  // [Q*D][H], [KV*D][H], [KV*D][H], [H][Q*D]
  MatView q_norm, k_norm;  // [1][D]; empty when the architecture has no q/k norm
  MatView ffn_norm;        // [1][H]
  MatView router;          // [E][H], MoE layers only
  ExpertWeights dense;     // dense MLP layers only: gate/up [I][H], down [H][I]
};

struct ModelWeights {
  MatView embed;       // [V][H]
  MatView final_norm;  // [1][H]
  MatView lm_head;     // [V][H]; the embedding when tied
  std::vector<LayerWeights> layers;
};

// Where expert weights live. The reference store holds host views into mapped files; the
// offload engine's store moves experts between NVMe, pinned RAM and the GPU.
// Thread-safety: implementations say.
class ExpertStore {
 public:
  virtual ~ExpertStore() = default;
  virtual int n_layers() const = 0;
  virtual int n_experts() const = 0;
  // Host-readable weights of one expert of a MoE layer; valid while the store lives.
  virtual ExpertWeights host_view(int layer, int expert) const = 0;
};

}  // namespace cs
