// Placing host weight views on a backend: a no-op for host backends, an upload otherwise.
#pragma once

#include <vector>

#include "kernels/backend.h"

namespace cs {

// Returns a view of `w` valid on `backend`; uploaded copies are kept alive in `storage`.
MatView place_on(Backend& backend, const MatView& w, std::vector<Buffer>& storage);
ExpertWeights place_on(Backend& backend, const ExpertWeights& w, std::vector<Buffer>& storage);

}  // namespace cs
