#include "runtime/model/arch.h"

namespace cs {

const ArchSpec& arch_spec(Arch arch) {
  static const ArchSpec kQwen3Moe{Arch::kQwen3Moe, "qwen3_moe", {"mlp", "mlp"},
                                  "gate_proj",     "up_proj",   "down_proj"};
  static const ArchSpec kMixtral{Arch::kMixtral, "mixtral", {"block_sparse_moe", "mlp"},
                                 "w1",           "w3",      "w2"};
  return arch == Arch::kMixtral ? kMixtral : kQwen3Moe;
}

}  // namespace cs
