// Builds a GPTQ-Int4 checkpoint from a float fixture (AutoGPTQ's layout and zero convention):
// every attention and expert linear becomes qweight/qzeros/scales, the rest stays F32.
#pragma once

#include <string>

namespace cs::test {

// Writes dst/config.json and dst/model.safetensors. `group` along the input dimension.
void make_gptq_checkpoint(const std::string& src_dir, const std::string& dst_dir, int group,
                          bool symmetric);

// The value GPTQ assigns to weight (n, k) of layer `base` in a checkpoint made above.
float gptq_weight(const std::string& dir, const std::string& base, int64_t n, int64_t k);

}  // namespace cs::test
