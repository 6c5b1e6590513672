// Architectures as data: how each names its tensors in Hugging Face checkpoints. One forward
// function (runtime/engine/transformer.cpp) serves all of them, switched by ModelConfig flags,
// so adding an architecture means adding a row here and a branch in config parsing, not a copy.
#pragma once

#include <string>

#include "runtime/model/config.h"

namespace cs {

struct ArchSpec {
  Arch arch;
  const char* model_type;
  // MoE block prefixes inside a layer, in the order tried: hub name first, transformers 5 second.
  const char* moe_prefixes[2];
  const char* expert_gate;  // per-expert tensor names under <prefix>.experts.E.
  const char* expert_up;
  const char* expert_down;
};

const ArchSpec& arch_spec(Arch arch);

}  // namespace cs
