// The offload engine's view of a packed model file: where each expert blob is (ExpertLocator,
// offload/expert_locator.h), filled from the packed reader's header (runtime/format).
#pragma once

#include "offload/expert_locator.h"
#include "runtime/format/packed_reader.h"

namespace cs {

// Every expert of every expert layer of `file`: offset, size, XXH3 and layout, validated
// against the file. Throws cs::Error (kBadFile) naming the file, layer and expert.
ExpertLocator expert_locator(const PackedFile& file);

}  // namespace cs
