// End-to-end quantization error of a model against reference logits: top-1 agreement and mean
// KL(reference || model) over every position of the fixtures' prompts.
#pragma once

#include <string>
#include <vector>

#include "runtime/model/model.h"

namespace cs::test {

struct QuantError {
  double top1 = 0;     // share of positions whose argmax equals the reference's
  double mean_kl = 0;  // nats
  int positions = 0;
};

// Against transformers' logits recorded for fixture `name` (tests/fixtures/reference).
QuantError error_vs_reference(const Model& m, const std::string& name);
// Against another model's logits on the same prompts.
QuantError error_vs_model(const Model& m, const Model& ref,
                          const std::vector<std::vector<int32_t>>& prompts);

}  // namespace cs::test
