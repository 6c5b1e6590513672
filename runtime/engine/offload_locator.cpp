#include "runtime/engine/offload_locator.h"

namespace cs {

ExpertLocator expert_locator(const PackedFile& file) {
  const PackedIndex& ix = file.index();
  const ModelConfig& c = file.config();
  ExpertLocator loc(file.path(), c.n_layers, c.n_experts);
  for (size_t m = 0; m < ix.moe_layers.size(); ++m)
    for (int e = 0; e < c.n_experts; ++e) {
      ExpertBlobLocation& b = loc.at(ix.moe_layers[m], e);
      b.offset = file.expert_offset(m, e);
      b.bytes = ix.expert_layout.bytes;
      b.xxh3 = ix.expert_xxh3.at(m * size_t(c.n_experts) + size_t(e));
      b.layout = ix.expert_layout;
    }
  validate_locator(loc, file.size());
  return loc;
}

}  // namespace cs
