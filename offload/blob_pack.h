// Expert blobs made in memory: from host weight views (a Hugging Face directory, the test
// fixtures), or random INT4 experts for benchmarks; and scratch files of blobs with their
// locator (tests and `coldstream bench` without a packed file). The packed-file writer
// (runtime/format) writes real model files; this is not a file format.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "kernels/types.h"
#include "offload/expert_locator.h"

namespace cs {

// The blob layout for an expert given as views (dtype, shapes and quant group of its gate).
// Throws cs::Error when gate, up and down disagree on dtype or group.
ExpertLayout layout_of(const ExpertWeights& w);

// Copies the arrays of `w` into the blob at `dst` (layout.bytes bytes, zero padding).
void pack_expert_blob(const ExpertWeights& w, const ExpertLayout& layout, void* dst);

// Fills a Q4 blob with random zero-mean codes (1..15, so q - 8 averages 0: see BENCHMARKS.md)
// and scales of about `scale` / 8, from `seed`. Deterministic.
void fill_random_q4_blob(const ExpertLayout& layout, uint64_t seed, float scale, void* dst);

// Writes blobs for every (layer, expert) with layouts[layer].bytes > 0 to `path` at 4 KiB
// aligned offsets (starting at `first_offset`), each produced by make(layer, expert, dst), and
// returns the locator with checksums. `make` runs on several threads at once (one blob each).
// Throws cs::Error (kIo) naming the path.
ExpertLocator write_blob_file(const std::string& path, int n_layers, int n_experts,
                              const std::vector<ExpertLayout>& layouts,
                              const std::function<void(int, int, void*)>& make,
                              uint64_t first_offset = kBlobAlign);

}  // namespace cs
