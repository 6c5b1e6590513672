#include "cache/hybrid_chooser.h"

#include <algorithm>
#include <numeric>

#include "common/error.h"

namespace cs {

HybridChooser::HybridChooser(CostModel model, double ewma) : model_(std::move(model)), ewma_(ewma) {
  if (!(ewma_ >= 0 && ewma_ <= 1))
    fail(ErrorKind::kInvalidArgument, "hybrid chooser: EWMA weight {} outside [0, 1]", ewma_);
}

CostModel HybridChooser::scaled_model() const {
  CostParams p = model_.params();
  p.copy_rate /= copy_scale_;
  p.copy_latency *= copy_scale_;
  p.dram_rate /= cpu_scale_;
  p.cpu_fixed *= cpu_scale_;
  for (TokenCost& c : p.cpu) c.seconds *= cpu_scale_;
  return CostModel(p);
}

HybridSplit HybridChooser::split(const PassInfo& pass, const std::vector<MissInfo>& misses) const {
  const CostModel m = scaled_model();
  const int resident = pass.hits + pass.waits;
  const int resident_tokens = resident ? std::max(1, pass.hit_tokens / resident) : 1;
  HybridSplit out;
  out.paths.assign(misses.size(), MissPath::kStream);
  // Channel finish times so far.
  double copy = pass.waits * m.copy_seconds() + resident * m.gpu_seconds(resident_tokens);
  double cpu = 0;
  std::vector<size_t> order(misses.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return misses[a].tokens > misses[b].tokens; });
  PassLoad load;
  load.gpu_resident = pass.hits;
  load.in_flight = pass.waits;
  load.gpu_tokens_resident = resident_tokens;
  for (size_t i : order) {
    const MissInfo& x = misses[i];
    const double read = x.in_host ? 0.0 : m.nvme_seconds();
    const double copy_if = copy + read + m.copy_seconds() + m.gpu_seconds(x.tokens);
    const double cpu_if = (cpu > 0 ? cpu : m.params().cpu_fixed) + read + m.cpu_seconds(x.tokens);
    if (std::max(copy, cpu_if) < std::max(copy_if, cpu)) {
      out.paths[i] = MissPath::kCpu;
      cpu = cpu_if;
      load.cpu_tokens.push_back(x.tokens);
      load.nvme_cpu += !x.in_host;
    } else {
      copy = copy_if;
      load.stream_tokens.push_back(x.tokens);
      load.nvme_stream += !x.in_host;
    }
  }
  out.predicted = m.pass_seconds(load);
  return out;
}

void HybridChooser::begin_pass(const PassInfo& pass, const std::vector<MissInfo>& misses) {
  pending_ = misses;
  paths_ = split(pass, misses).paths;
  next_ = 0;
}

MissPath HybridChooser::choose(const MissInfo& miss) {
  if (next_ < pending_.size() && pending_[next_].id == miss.id) return paths_[next_++];
  // Not announced by begin_pass (a caller that only calls choose()): decide it alone.
  return split(PassInfo{miss.id.layer, miss.T, 0, 0, 0}, {miss}).paths[0];
}

void HybridChooser::observe(double predicted_copy, double measured_copy, bool copy_upper_bound,
                            double predicted_cpu, double measured_cpu) {
  auto update = [&](double& scale, double predicted, double measured, bool upper) {
    if (!(predicted > 0) || !(measured > 0)) return;
    // `predicted` already includes the current scale: the unscaled prediction is predicted/scale.
    const double ratio = std::clamp(measured / (predicted / scale), 0.05, 20.0);
    if (upper && ratio >= scale) return;
    scale = (1 - ewma_) * scale + ewma_ * ratio;
  };
  update(copy_scale_, predicted_copy, measured_copy, copy_upper_bound);
  update(cpu_scale_, predicted_cpu, measured_cpu, false);
}

PassLoad pass_load(const PlanPass& pass) {
  PassLoad l;
  l.gpu_resident = int(pass.hits.size());
  l.in_flight = int(pass.waits.size());
  const int T = std::max(1, pass.t_end - pass.t_begin);
  l.gpu_tokens_resident = T;  // unknown per hit: at most every token of the pass
  for (const PlanCopy& c : pass.demand) {
    l.stream_tokens.push_back(c.tokens);
    l.nvme_stream += c.host.needed();
  }
  for (const PlanCpu& c : pass.cpu) {
    l.cpu_tokens.push_back(c.tokens);
    l.nvme_cpu += c.host.needed();
  }
  return l;
}

}  // namespace cs
