// The reference with the quantized kernels' one approximation made explicit: activations rounded
// to int8 per block of 32 by the CPU kernels' own quantizer (scalar level) and expanded back to
// fp32. The fast CPU backend (tests/model) and the GPU's Q4/Q8 GEMVs (tests/gpu) both round
// their inputs this way, so against these the remaining difference is fp32 summation order.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/types.h"

namespace cs::test {

// v[0..C) quantized to int8 per block of 32 and back. REQUIRES: C % 32 == 0.
std::vector<float> int8_rounded(const float* v, int64_t C);
// Each row of `rows` values (0: all of x as one row) of x, rounded as above.
std::vector<float> int8_rounded(const std::vector<float>& x, size_t rows = 0);

// out[t] += sum_j weights[t][j] * down(int8(silu(gate xr) * up xr)) with xr = int8(x[t]), over
// the K routed experts of each token; experts whose gate is empty are skipped (computed
// elsewhere). `expert(id)` gives host views.
void int8_rounded_moe(const std::function<ExpertWeights(int32_t)>& expert, const float* x, int T,
                      int hidden, int K, const int32_t* ids, const float* weights, float* out);

}  // namespace cs::test
