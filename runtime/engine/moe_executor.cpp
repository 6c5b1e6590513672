#include "runtime/engine/moe_executor.h"

#include "runtime/engine/placement.h"

namespace cs {

ResidentMoeExecutor::ResidentMoeExecutor(Backend& backend, const ExpertStore& store, int hidden,
                                         int k, const std::vector<bool>& moe_layers)
    : backend_(backend), hidden_(hidden), k_(k), n_experts_(store.n_experts()) {
  tables_.resize(moe_layers.size());
  for (size_t l = 0; l < moe_layers.size(); ++l) {
    if (!moe_layers[l]) continue;
    const ExpertWeights first = store.host_view(int(l), 0);
    dtype_ = first.gate.dtype;
    inter_ = int(first.gate.rows);
    std::vector<ExpertWeights> table(static_cast<size_t>(n_experts_));
    for (int e = 0; e < n_experts_; ++e)
      table[e] = place_on(backend, store.host_view(int(l), e), storage_);
    tables_[l] = backend.alloc(table.size() * sizeof(ExpertWeights));
    backend.upload(tables_[l].get(), table.data(), table.size() * sizeof(ExpertWeights));
  }
}

void ResidentMoeExecutor::forward(int layer, const float* x, int T, const int32_t* ids,
                                  const float* weights, float* out) {
  MoeArgs a;
  a.x = x;
  a.T = T;
  a.hidden = hidden_;
  a.ids = ids;
  a.weights = weights;
  a.k = k_;
  a.table = tables_[layer].as<const ExpertWeights>();
  a.n_experts = n_experts_;
  a.dtype = dtype_;
  a.inter = inter_;
  a.out = out;
  backend_.moe(a);
}

}  // namespace cs
