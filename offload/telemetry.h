// What the offload engine did, per step (one forward pass: a decoded token or a prefill chunk)
// and per run: expert hits, misses by path, bytes from each tier, time blocked on transfers,
// predictor precision and recall. A plain struct the CLI, `coldstream bench` and the C API read.
//
// Thread-safety: none (written by the executor, read between steps).
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "cache/prediction_scorer.h"

namespace cs {

struct StepTelemetry {
  uint64_t step = 0;
  int tokens = 0;
  uint64_t expert_uses = 0;         // (layer, expert) uses: distinct per layer pass
  uint64_t hits = 0;                // in a GPU slot when planned (arrived prefetches included)
  uint64_t prefetch_hits = 0;       // of those, arrived by prefetch and used for the first time
  uint64_t waits = 0;               // prefetch still in flight when needed
  uint64_t demand = 0;              // copied to the GPU on demand
  uint64_t cpu = 0;                 // computed on the CPU
  uint64_t prefetches = 0;          // copies started by a prediction
  uint64_t bytes_host_to_gpu = 0;   // over PCIe
  uint64_t bytes_nvme_to_host = 0;  // from the packed file
  uint64_t gpu_evictions = 0, host_evictions = 0;
  uint64_t passes = 0;       // layer passes (more than one per layer: the slots were too few)
  uint64_t drains = 0;       // layers that waited for all in-flight prefetches first
  double stall_seconds = 0;  // blocked waiting for reads and copies
  double seconds = 0;        // wall time of the step's MoE layers
  // The hybrid split's channels (offload.mode): wall time of the CPU expert work (hidden state
  // down, CPU experts, result up), and the cost model's prediction of the passes.
  double cpu_seconds = 0;
  double predicted_seconds = 0;
  // The copy channel of the passes with CPU and copied experts, timed on the device: from the
  // pass's start to the end of the kernel over the copied experts (copies, then that kernel;
  // 0 where the backend keeps no timeline). Beside cpu_seconds it shows which channel ends.
  double copy_channel_seconds = 0;
  // Where the rest of a MoE layer's wall time goes: waiting for the layer's routing (the GPU's
  // attention, router and lookahead kernels queued before it, then the downloads) and the host
  // work between that and the first pass (prediction, plan, enqueueing copies and prefetches).
  double routing_wait_seconds = 0;
  double plan_seconds = 0;
  PredictionCounts prediction;

  double hit_rate() const { return expert_uses ? double(hits) / double(expert_uses) : 0.0; }
  // Shares of expert uses: on the GPU already (hits and waited prefetches), copied, on the CPU.
  double share(uint64_t n) const { return expert_uses ? double(n) / double(expert_uses) : 0.0; }
  StepTelemetry& operator+=(const StepTelemetry& o);
};

struct OffloadTelemetry {
  StepTelemetry total;
  std::deque<StepTelemetry> recent;         // the last steps, oldest first (bounded)
  std::vector<PredictionCounts> per_layer;  // predictor precision/recall per layer
  uint64_t prefetch_failures = 0;           // prefetches dropped after read errors
  uint64_t read_retries = 0, checksum_failures = 0;
  std::string last_error;  // the last dropped prefetch's error

  // A few lines: hit rate, bytes per token from each tier, stall, precision/recall.
  std::string summary() const;
};

// Collects StepTelemetry as steps run.
class TelemetryRecorder {
 public:
  explicit TelemetryRecorder(size_t keep_steps = 1024) : keep_(keep_steps) {}
  void begin_step(uint64_t step, int tokens);
  StepTelemetry& current() { return cur_; }
  bool in_step() const { return in_step_; }
  void end_step();
  OffloadTelemetry& data() { return data_; }
  const OffloadTelemetry& data() const { return data_; }
  void reset();

 private:
  size_t keep_;
  bool in_step_ = false;
  StepTelemetry cur_;
  OffloadTelemetry data_;
};

}  // namespace cs
