// The hybrid scheduler's decision: for each pass of a layer, which misses are copied to the GPU
// (the copy channel: PCIe, then the GPU kernel) and which are computed on the CPU from their
// host copies (the CPU channel), so that both channels finish at about the same time. The cache
// keeps filling from prefetches and from the misses that are copied.
//
// The split is greedy over the cost model (cache/cost_model.h): misses in order of decreasing
// tokens (an expert many tokens use gains most from the GPU), each to the channel that finishes
// the pass sooner with it; ties go to the copy (it also fills the cache). At one token per
// expert (decode) this balances the channels; in prefill, experts that see many tokens stay on
// the GPU and only those with few tokens go to the CPU, and only when the CPU is faster for them.
//
// The model is kept current from measurements (observe()): the executor reports, per pass, what
// the cost model predicted for each channel and what it measured; an exponentially weighted
// mean of the ratio scales each channel's predictions.
//
// Thread-safety: none (the planner's thread). Deterministic for given observations.
#pragma once

#include <vector>

#include "cache/cost_model.h"
#include "cache/planner.h"

namespace cs {

struct HybridSplit {
  std::vector<MissPath> paths;  // per miss, in the order given
  PassTime predicted;           // with the channel scales applied
};

class HybridChooser final : public MissPathChooser {
 public:
  // `ewma`: weight of a new observation in the channel scales (0: never adapt).
  explicit HybridChooser(CostModel model, double ewma = 0.2);

  void set_model(CostModel model) { model_ = std::move(model); }
  const CostModel& model() const { return model_; }

  // The split of one pass (pure: no state changes). Exposed for tests and tools.
  HybridSplit split(const PassInfo& pass, const std::vector<MissInfo>& misses) const;

  void begin_pass(const PassInfo& pass, const std::vector<MissInfo>& misses) override;
  MissPath choose(const MissInfo& miss) override;

  // One measured pass: predicted and measured seconds of each channel (a channel that was
  // idle is passed as 0 and left alone). `copy_upper_bound`: the measured copy time is only an
  // upper bound (the copies had landed before anybody waited): it only lowers the scale.
  void observe(double predicted_copy, double measured_copy, bool copy_upper_bound,
               double predicted_cpu, double measured_cpu);
  double copy_scale() const { return copy_scale_; }
  double cpu_scale() const { return cpu_scale_; }
  // The cost model with the current scales folded into its rates and tables.
  CostModel scaled_model() const;

 private:
  CostModel model_;
  double ewma_;
  double copy_scale_ = 1.0, cpu_scale_ = 1.0;
  std::vector<MissInfo> pending_;
  std::vector<MissPath> paths_;
  size_t next_ = 0;
};

// The pass load of a plan pass as the cost model sees it (for predictions and telemetry).
PassLoad pass_load(const PlanPass& pass);

}  // namespace cs
