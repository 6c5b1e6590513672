// The offload tuner behind `coldstream tune`: replays a routing trace (cache/trace_replay.h)
// through every candidate configuration (policy x global or per-layer slots x predictor,
// horizon and threshold x hot set x miss mode), predicts time with the cost model
// (cache/cost_model.h) of a hardware profile, ranks the candidates, and writes the best as an
// offload configuration (TOML the runtime loads) and a hot-set profile (cache/hot_set.h).
// Belady's offline optimum at the same cache size bounds what any policy can reach.
//
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cache/cost_model.h"
#include "cache/plan.h"
#include "cache/trace_replay.h"
#include "offload/offload_config.h"
#include "runtime/eval/hardware.h"
#include "runtime/eval/model_shape.h"

namespace cs {

struct TuneCandidate {
  ReplayConfig replay;  // hot_set filled by the tuner
  OffloadMode mode = OffloadMode::kStream;
  int hot = 0;  // hot-set entries (from the trace's most used experts)
  std::string label() const;
};

struct TuneRow {
  TuneCandidate candidate;
  ReplayResult result;
};

struct TuneOptions {
  HardwareProfile hardware;
  uint64_t vram_budget = 0;  // 0: the profile's VRAM
  uint64_t host_budget = 0;  // 0: every expert in host RAM
  int gpu_slots = 0;         // > 0: exactly this many slots (else from the VRAM budget)
  int context = 4096;        // KV cache the slots must leave room for
  // Non-expert work per step and per token (0: estimated from the shape and the profile).
  double step_seconds = -1, token_seconds = -1;
  std::vector<int> curve_sizes;  // cache sizes of the plot (empty: K .. every expert)
};

struct TuneReport {
  ModelShape shape;
  CostParams cost;
  int gpu_slots = 0, host_slots = 0;
  std::string slots_note;     // how the slot count was found
  std::vector<TuneRow> rows;  // sorted: best (least predicted time) first
  size_t default_row = 0;     // index of the runtime's default configuration in `rows`
  ReplayResult belady;        // Belady at gpu_slots, no prefetch
  struct Curve {
    std::string policy;
    std::vector<int> sizes;
    std::vector<double> hit_rate;
  };
  std::vector<Curve> curves;         // hit rate against cache size per policy (no prefetch, global)
  std::vector<HotSetEntry> hot_set;  // of the best row (empty when it uses none)
};

// GPU expert slots a VRAM budget leaves after the dense weights, the KV cache and a reserve.
int slots_for_budget(const ModelShape& shape, uint64_t vram_budget, int context, std::string* note);

// The tuner's estimate of a step's non-expert time: the dense weights (but the embedding) read
// once at the GPU's memory rate.
double dense_step_seconds(const ModelShape& shape, const HardwareProfile& hw);

// The candidates the tuner tries for this trace and slot count.
std::vector<TuneCandidate> tune_candidates(const RoutingTrace& trace, int gpu_slots,
                                           int host_slots);

TuneReport tune(const RoutingTrace& trace, const ModelShape& shape, const TuneOptions& options);

// The runtime's offload configuration for a candidate (the keys the tuner decides; the rest keep
// the defaults). `hot_set_path` is written into cache.hot_set when the candidate has a hot set.
OffloadConfig candidate_config(const TuneCandidate& c, const TuneOptions& o,
                               const std::string& hot_set_path);
// The configuration as a commented TOML file (loads with load_offload_config).
std::string format_tuned_config(const TuneReport& r, const OffloadConfig& cfg,
                                const std::string& header_comment);
// The hit-rate curves as an SVG plot.
std::string format_curves_svg(const TuneReport& r);
// The table `coldstream tune` prints (the best rows, the default, Belady).
std::string format_tune_table(const TuneReport& r, size_t max_rows);

}  // namespace cs
