#include "cache/expert_id.h"

#include <fmt/format.h>

namespace cs {

std::string to_string(ExpertId id) {
  return fmt::format("L{}.E{}", id.layer, id.expert);
}

}  // namespace cs
