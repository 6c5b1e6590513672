// Small statistics over measurements.
//
// Thread-safety: pure functions.
#pragma once

#include <algorithm>
#include <vector>

namespace cs {

// The median of `v`; for an even count the upper of the two middle values (v[n/2] in sorted
// order). REQUIRES: v is not empty.
inline double median(std::vector<double> v) {
  const auto mid = v.begin() + std::ptrdiff_t(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  return *mid;
}

}  // namespace cs
