// Start-up calibration of the hybrid scheduler's cost model (cache/cost_model.h): measures, on
// the machine and the model at hand, the host-to-GPU copy rate of expert blobs, the CPU expert
// kernel's time at decode-like and prefill-like token counts (and so its DRAM read rate), the GPU
// expert kernel's time at the same counts, and the fixed cost of a CPU pass (hidden state down,
// result up, add). Takes a fraction of a second; results are logged and kept in CostParams.
//
// Uses the executor's real buffers: host blobs from the host tier, GPU slots, the backends. GPU
// slot contents are overwritten (call before the cache holds anything). Host blobs are only read.
//
// Thread-safety: the executor's thread, before the first layer runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cache/cost_model.h"
#include "kernels/backend.h"
#include "kernels/expert_layout.h"

namespace cs {

class CopyEngine;

struct CalibrationInputs {
  Backend* gpu = nullptr;  // the device backend (may be a host backend in tests)
  Backend* cpu = nullptr;  // computes CPU experts
  CopyEngine* copies = nullptr;
  std::vector<const uint8_t*> host_blobs;  // distinct host copies of experts (at least k)
  uint8_t* gpu_slots = nullptr;            // at least k slots of slot_bytes, backend memory
  uint64_t slot_bytes = 0;
  ExpertLayout layout;  // of every blob above
  int hidden = 0, k = 0, n_experts = 0, inter = 0;
  DType dtype = DType::kF32;
  int max_tokens = 256;                // largest token count measured (prefill chunk)
  ExpertWeights* gpu_table = nullptr;  // backend memory, n_experts entries
  float* gpu_scratch = nullptr;        // backend memory, calibration_scratch_bytes()
  CostParams defaults;                 // nvme_rate etc. are kept from here
};

// Backend bytes calibrate_offload needs at gpu_scratch.
size_t calibration_scratch_bytes(int hidden, int k, int max_tokens);

// The token counts measured: 1 (decode), then up to max_tokens (prefill chunks).
std::vector<int> calibration_token_counts(int max_tokens);

// Measures and returns the parameters; `report` gets a line per measurement.
CostParams calibrate_offload(const CalibrationInputs& in, std::string* report = nullptr);

}  // namespace cs
