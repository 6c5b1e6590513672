// `coldstream plan`: will a model run on a machine, what stays where, and how fast. From the
// model's sizes (runtime/eval/model_shape.h) and a hardware profile (runtime/eval/hardware.h),
// with the cost model (cache/cost_model.h) the hybrid scheduler and the tuner use.
//
// Assumptions (printed with every plan): routing is uniform over experts, so the GPU cache hits
// in proportion to the share of experts it holds (a routing trace and `coldstream tune` replace
// this with measured hit rates); decode misses are split between PCIe copies and CPU experts in
// the best proportion; prefill streams every missing expert once per chunk of `chunk` tokens,
// overlapped with the GPU's expert GEMMs.
#pragma once

#include <string>
#include <vector>

#include "runtime/eval/hardware.h"
#include "runtime/eval/model_shape.h"

namespace cs {

struct CapacityPlanOptions {
  int context = 4096;            // KV cache tokens
  int chunk = 256;               // prefill tokens per step
  uint64_t os_ram = 8ull << 30;  // host RAM left to the OS and other programs
};

struct CapacityPlan {
  bool fits = false;
  std::string why_not;                // when !fits
  int gpu_slots = 0, host_slots = 0;  // host_slots: experts held in RAM
  bool all_on_gpu = false, all_in_ram = false;
  double gpu_hit = 0, ram_hit = 0;  // assumed hit rates of the GPU cache and of RAM
  double cpu_share = 0;             // share of decode misses computed on the CPU
  double decode_tok_s = 0, prefill_tok_s = 0;
  std::string decode_bottleneck, prefill_bottleneck;
  // Decode seconds per token by part.
  double t_dense = 0, t_gpu_experts = 0, t_copies = 0, t_cpu = 0, t_nvme = 0;
  double t_layers = 0;  // the cost model's fixed time per MoE layer (routing, launches)
  std::string slots_note;
};

CapacityPlan plan_capacity(const ModelShape& shape, const HardwareProfile& hw,
                           const CapacityPlanOptions& o);
std::string format_capacity_plan(const ModelShape& shape, const HardwareProfile& hw,
                                 const CapacityPlanOptions& o, const CapacityPlan& p);

}  // namespace cs
