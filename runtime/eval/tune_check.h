// `coldstream tune --check`: is the simulator honest on this machine? For each offload
// configuration, the trace is replayed through the simulator (cache/trace_replay.h, the code
// `tune` ranks with) and the real model runs through the offload engine (OffloadRuntime: the
// executor with its real cache, planner and copies) teacher-forced on the trace's token ids, one
// Session::eval per recorded step, so both see the same routing. Hit and served rates and decode
// tokens per second are compared.
//
// Both start from an empty cache and cover every step: hit rates are over the whole trace. Time
// is compared over the decode steps (T == 1) of the requests after the first `warmup` ones (the
// replay of those first requests alone is a prefix of the full replay and is subtracted).
//
// The replay's timing assumption: every copy a layer starts has landed when the next layer is
// planned. On a GPU some prefetches are still in flight when needed (waits): they are hits in the
// replay and waits in the run, so the replay's hit rate is to be read against the measured
// served rate (hits + waits) there; on the host-only backend copies run synchronously and the
// hit rates match.
//
// Cost model of the predictions (CheckCost): with `calibrate`, this machine's rates, measured by
// the offload engine's start-up calibration (runtime/engine/offload_calibration.h) in a runtime
// with the default configuration, and the non-expert time of a decode step and the scale of the
// expert time measured on the warm-up requests (fit_expert_time over their decode steps: wall
// time against the cost model's prediction of the step's expert passes), once in the default
// configuration and once with offload.mode = stream (CheckCost::stream_time); else a hardware
// profile's rates and the tuner's estimate (dense weights at memory speed).
//
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cache/cost_model.h"
#include "cache/routing_trace.h"
#include "cache/trace_replay.h"
#include "offload/offload_config.h"
#include "offload/telemetry.h"
#include "runtime/eval/hardware.h"
#include "runtime/eval/model_shape.h"
#include "runtime/model/model.h"

namespace cs {

struct CheckOptions {
  std::string device = "cuda";  // a --device value: cuda, cuda:N, cpu
  uint64_t vram_budget = 0;     // > 0: overrides every configuration's device.vram_budget
  int gpu_slots = 0;            // > 0: exactly this many GPU slots (tests, the CPU smoke run)
  int warmup = 1;               // leading requests left out of the timing (and used to calibrate)
  std::function<void(const std::string&)> log;  // progress; null: quiet
};

// The time of a step outside the cost model's expert passes, and the scale of those passes.
struct CheckTime {
  double step_seconds = 0, token_seconds = 0;  // non-expert time per step, per extra token
  double expert_scale = 1;  // measured seconds per second the cost model predicts for experts
};

struct CheckCost {
  CostParams cost;
  // Configurations whose misses may go to the CPU (hybrid, cpu): the host computes experts
  // inside the layer. Calibrated: measured in the default (hybrid) configuration.
  CheckTime time;
  // Stream configurations: the host plans and launches while the copies land, so a miss costs
  // less around it. Calibrated: measured in the default configuration with offload.mode =
  // stream; unset: `time`.
  std::optional<CheckTime> stream_time;
  std::string note;  // where the numbers come from

  const CheckTime& for_mode(OffloadMode mode) const {
    return mode == OffloadMode::kStream && stream_time ? *stream_time : time;
  }
};

// How a decode step's wall time follows the cost model's prediction of its expert passes:
// seconds = rest + scale x predicted. The start-up calibration times each channel alone, so it
// misses what a miss costs around it (tables, extra launches, the result upload, both channels
// reading the same DRAM); the warm-up request's steps, whose misses fall as the cache fills,
// measure it. The slope is the Theil-Sen estimate (the median of the pairwise slopes: robust to
// a few slow steps); it is used when there are enough steps and the predictions spread enough
// to measure one (24 steps or more, their 10th and 90th percentiles at least 10% of the median
// apart, 50 pairs of steps that far apart) and it lies in [0.5, 3]; else the scale stays 1.
// `rest` is the median of seconds - scale x predicted. Every step has non-expert work, so a rest
// of 0 or less means the model or the slope is off (timings on a busy machine): a fitted slope is
// dropped (scale 1); if the rest is still not positive and `moe_seconds` (the executor's own time
// of each step's MoE layers) is given, the steps are split as measured instead: rest = median of
// seconds - moe_seconds, scale = median of moe_seconds / predicted (within [0.5, 3]).
struct ExpertTimeFit {
  double scale = 1, rest = 0;
  bool fitted = false;    // the slope was measured (else scale is 1)
  bool measured = false;  // split as measured (see above)
  int steps = 0;          // the steps it was fitted over
};
ExpertTimeFit fit_expert_time(const std::vector<double>& predicted,
                              const std::vector<double>& seconds,
                              const std::vector<double>& moe_seconds = {});

// The cost model from a hardware profile (the tuner's estimate of the non-expert time).
CheckCost check_cost_from_profile(const HardwareProfile& hw, const ModelShape& shape);
// This machine's cost model (see above): a runtime with the default configuration (hybrid,
// calibrated at start, no adaptation) runs the trace's first `warmup` requests, then one with
// the default configuration in stream mode.
CheckCost calibrate_check_cost(const Model& model, const RoutingTrace& trace,
                               const CheckOptions& options);

struct CheckResult {
  std::string name;
  int gpu_slots = 0;
  ReplayResult simulated;       // whole trace
  StepTelemetry measured;       // whole trace
  double sim_decode_tok_s = 0;  // decode steps after the warm-up requests
  double decode_tok_s = 0;      // measured over the same steps
  uint64_t decode_tokens = 0;
  double decode_seconds = 0, wall_seconds = 0;  // measured: those decode steps, the whole run
  // Share of the trace's (token, expert) choices the run's routers made too: 1 when the device
  // computes the routers as the traced one did; rounding on another backend can flip near ties.
  double routing_agreement = 0;
};

// The replay configuration of an offload configuration at `gpu_slots` (the hot set read from
// config.cache.hot_set when set).
ReplayConfig replay_config(const OffloadConfig& config, int gpu_slots, const RoutingTrace& trace);

// One configuration: replay and measured run (REQUIRES: trace.has_tokens()).
CheckResult check_config(const Model& model, const RoutingTrace& trace, const std::string& name,
                         const OffloadConfig& config, const CheckCost& cost,
                         const CheckOptions& options);

// The result as JSON (for --json).
nlohmann::json check_json(const CheckResult& r);

// "check NAME: simulated hit X% served Y% Z tok/s | measured ... | diff ..."
std::string format_check_line(const CheckResult& r);

}  // namespace cs
