// Placing host weight views on a backend: a no-op for host backends, an upload otherwise.
#pragma once

#include <vector>

#include "kernels/backend.h"

namespace cs {

// Returns a view of `w` valid on `backend`; uploaded copies are kept alive in `storage`.
MatView place_on(Backend& backend, const MatView& w, std::vector<Buffer>& storage);
ExpertWeights place_on(Backend& backend, const ExpertWeights& w, std::vector<Buffer>& storage);

// Bytes a view occupies once placed on a backend (data, scales and mins).
size_t placed_bytes(const MatView& w);
size_t placed_bytes(const ExpertWeights& w);

// One view over the rows of `parts` stacked in order (for example q, k and v projections, so a
// decode step reads them in one GEMV), placed on a non-host backend; `parts` are rewritten as
// views into it. Returns an empty view, changing nothing, when the parts differ in dtype, columns,
// group or asymmetry, or when the backend is host memory.
MatView place_stacked(Backend& backend, std::vector<MatView*> parts, std::vector<Buffer>& storage);

}  // namespace cs
