#include "offload/telemetry.h"

#include <fmt/format.h>

#include "common/units.h"

namespace cs {

StepTelemetry& StepTelemetry::operator+=(const StepTelemetry& o) {
  tokens += o.tokens;
  expert_uses += o.expert_uses;
  hits += o.hits;
  prefetch_hits += o.prefetch_hits;
  waits += o.waits;
  demand += o.demand;
  cpu += o.cpu;
  prefetches += o.prefetches;
  bytes_host_to_gpu += o.bytes_host_to_gpu;
  bytes_nvme_to_host += o.bytes_nvme_to_host;
  gpu_evictions += o.gpu_evictions;
  host_evictions += o.host_evictions;
  passes += o.passes;
  drains += o.drains;
  stall_seconds += o.stall_seconds;
  seconds += o.seconds;
  cpu_seconds += o.cpu_seconds;
  predicted_seconds += o.predicted_seconds;
  copy_channel_seconds += o.copy_channel_seconds;
  routing_wait_seconds += o.routing_wait_seconds;
  plan_seconds += o.plan_seconds;
  prediction += o.prediction;
  return *this;
}

std::string OffloadTelemetry::summary() const {
  const StepTelemetry& t = total;
  const double tok = t.tokens > 0 ? double(t.tokens) : 1.0;
  std::string s = fmt::format(
      "experts: {} uses, hit rate {:.1f}% ({} prefetched), {} waited on a prefetch, {} demand "
      "copies, {} on the CPU\n",
      t.expert_uses, 100.0 * t.hit_rate(), t.prefetch_hits, t.waits, t.demand, t.cpu);
  s += fmt::format(
      "split: {:.1f}% on the GPU (hits and prefetches), {:.1f}% copied, {:.1f}% on the CPU; MoE "
      "layers {:.2f} ms per token (routing wait {:.2f} ms, plan {:.2f} ms, CPU experts {:.2f} ms, "
      "cost model {:.2f} ms)\n",
      100.0 * t.share(t.hits + t.waits), 100.0 * t.share(t.demand), 100.0 * t.share(t.cpu),
      1e3 * t.seconds / tok, 1e3 * t.routing_wait_seconds / tok, 1e3 * t.plan_seconds / tok,
      1e3 * t.cpu_seconds / tok, 1e3 * t.predicted_seconds / tok);
  s += fmt::format(
      "bytes per token: {} host->GPU, {} NVMe->host; stall {:.2f} ms per token; {} prefetches, "
      "{} GPU evictions, {} host evictions\n",
      format_bytes(double(t.bytes_host_to_gpu) / tok),
      format_bytes(double(t.bytes_nvme_to_host) / tok), 1e3 * t.stall_seconds / tok, t.prefetches,
      t.gpu_evictions, t.host_evictions);
  s += fmt::format("predictor: precision {:.1f}%, recall {:.1f}% ({} predicted, {} routed)\n",
                   100.0 * t.prediction.precision(), 100.0 * t.prediction.recall(),
                   t.prediction.predicted, t.prediction.actual);
  if (prefetch_failures || read_retries || checksum_failures)
    s += fmt::format("io: {} read retries, {} checksum failures, {} prefetches dropped{}\n",
                     read_retries, checksum_failures, prefetch_failures,
                     last_error.empty() ? "" : " (last: " + last_error + ")");
  return s;
}

void TelemetryRecorder::begin_step(uint64_t step, int tokens) {
  if (in_step_) end_step();
  cur_ = StepTelemetry{};
  cur_.step = step;
  cur_.tokens = tokens;
  in_step_ = true;
}

void TelemetryRecorder::end_step() {
  if (!in_step_) return;
  in_step_ = false;
  data_.total += cur_;
  data_.recent.push_back(cur_);
  while (data_.recent.size() > keep_) data_.recent.pop_front();
}

void TelemetryRecorder::reset() {
  in_step_ = false;
  cur_ = StepTelemetry{};
  data_ = OffloadTelemetry{};
}

}  // namespace cs
