// GPTQ-Int4 linear layers (checkpoint_format "gptq", desc_act false) as a SourceMatrix.
//
//   qweight I32 [K/8, N]  eight 4-bit codes along the input dimension, least significant first
//   qzeros  I32 [G, N/8]  eight 4-bit zeros along the output dimension; the real zero is z + 1
//   scales  F16 [G, N]    G = K / group_size
//   w[n][k] = scales[g][n] * (q - (z + 1)),  g = k / group_size
// The codes map onto our Q4 without requantizing: symmetric checkpoints (every stored zero 7)
// become symmetric Q4 exactly; others become asymmetric Q4 with d = s and m = -s * (z + 1)
// rounded to fp16. Group sizes above 128 repeat their scale over 128-wide groups.
#pragma once

#include <memory>
#include <string>

#include "runtime/format/source_matrix.h"
#include "runtime/format/tensor_source.h"

namespace cs {

// `name` is the layer's name for messages; g_idx may be null. Throws cs::Error naming the
// tensor when shapes or dtypes disagree or act-order (a permuted g_idx) is used.
std::unique_ptr<SourceMatrix> gptq_source(const std::string& name, const TensorRef& qweight,
                                          const TensorRef& qzeros, const TensorRef& scales,
                                          const TensorRef* g_idx);

}  // namespace cs
