#include "runtime/eval/capacity_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "cache/cost_model.h"
#include "common/units.h"
#include "runtime/eval/tuner.h"

namespace cs {

CapacityPlan plan_capacity(const ModelShape& s, const HardwareProfile& hw,
                           const CapacityPlanOptions& o) {
  CapacityPlan p;
  const CostModel cost(hw.cost_params(s.expert_bytes));
  const uint64_t total = s.expert_total();
  p.gpu_slots = slots_for_budget(s, hw.vram, o.context, &p.slots_note);
  const uint64_t ram_free = hw.ram > o.os_ram ? hw.ram - o.os_ram : 0;
  p.host_slots = int(std::min<uint64_t>(ram_free / s.expert_bytes, total));
  p.all_on_gpu = uint64_t(p.gpu_slots) >= total;
  p.all_in_ram = p.all_on_gpu || uint64_t(p.host_slots) >= total;
  if (p.gpu_slots < s.k) {
    p.why_not = fmt::format(
        "the GPU has room for {} experts after the dense weights and the KV "
        "cache; one token needs {}",
        p.gpu_slots, s.k);
    return p;
  }
  if (!p.all_in_ram && hw.nvme <= 0) {
    p.why_not = "the experts do not fit in RAM and no NVMe rate is given";
    return p;
  }
  p.fits = true;
  p.gpu_hit = std::min(1.0, double(p.gpu_slots) / double(total));
  p.ram_hit =
      p.all_in_ram ? 1.0 : std::min(1.0, double(p.gpu_slots + p.host_slots) / double(total));

  // Decode: per MoE layer k experts; hits on the GPU, misses copied or computed on the CPU, the
  // misses not in RAM read from NVMe first.
  const double L = s.n_moe_layers, k = s.k;
  const double hits = k * p.gpu_hit, miss = k - hits;
  const double nvme_per_layer = k * (1 - p.ram_hit);
  p.t_dense = double(s.dense_bytes - s.embed_bytes) / hw.vram_bw +
              double(o.context / 2) * double(s.kv_bytes_per_token) / hw.vram_bw;
  p.t_nvme = L * nvme_per_layer * cost.nvme_seconds();
  double best = 1e30;
  for (int i = 0; i <= 20; ++i) {
    const double x = i / 20.0;  // share of misses on the CPU
    const double t =
        cost.decode_token_seconds(s.n_moe_layers, hits, miss * (1 - x), miss * x, p.t_dense) +
        p.t_nvme;
    if (t < best - 1e-12) {
      best = t;
      p.cpu_share = x;
    }
  }
  p.decode_tok_s = 1 / best;
  p.t_copies = L * miss * (1 - p.cpu_share) * cost.copy_seconds();
  p.t_cpu = miss * p.cpu_share > 0
                ? L * (cost.params().cpu_fixed + miss * p.cpu_share * cost.cpu_seconds(1))
                : 0;
  p.t_gpu_experts = L * (hits + miss * (1 - p.cpu_share)) * cost.gpu_seconds(1);
  p.t_layers = L * cost.params().layer_fixed;
  {
    const std::pair<double, const char*> parts[] = {
        {p.t_dense, "dense weights and KV cache at GPU memory speed"},
        {p.t_gpu_experts, "expert GEMV on the GPU"},
        {p.t_layers, "fixed time per layer (routing, launches, small kernels)"},
        {p.t_copies, "PCIe copies of missed experts"},
        {p.t_cpu, "CPU experts (DRAM bandwidth)"},
        {p.t_nvme, "NVMe reads of experts not in RAM"}};
    p.decode_bottleneck = std::max_element(std::begin(parts), std::end(parts))->second;
  }

  // Prefill: a chunk of C tokens uses nearly every expert of each layer; the missing ones are
  // streamed once per chunk while the GPU computes.
  const double C = o.chunk;
  const double used = double(s.n_experts) * (1 - std::pow(1 - k / double(s.n_experts), C));
  const double stream = L * used * (1 - p.gpu_hit) * cost.copy_seconds();
  const double nvme = L * used * (1 - p.ram_hit) * cost.nvme_seconds();
  const double compute = 2 * s.active_params * C / (hw.gpu_tflops * 1e12);
  const double chunk_s = std::max({stream, nvme, compute});
  p.prefill_tok_s = C / chunk_s;
  p.prefill_bottleneck = chunk_s == compute  ? "GPU compute (expert and attention GEMMs)"
                         : chunk_s == stream ? "PCIe copies of the experts not on the GPU"
                                             : "NVMe reads of the experts not in RAM";
  return p;
}

std::string format_capacity_plan(const ModelShape& s, const HardwareProfile& hw,
                                 const CapacityPlanOptions& o, const CapacityPlan& p) {
  std::string out = fmt::format(
      "model: {} ({} layers, {} MoE, {} experts of {} each, top-{}; experts {}, dense {}, KV "
      "{}/token)\nhardware: {}",
      s.name, s.n_layers, s.n_moe_layers, s.n_experts, format_bytes(double(s.expert_bytes)), s.k,
      format_bytes(double(s.experts_bytes())), format_bytes(double(s.dense_bytes)),
      format_bytes(double(s.kv_bytes_per_token)), hw.describe());
  if (!p.fits) return out + fmt::format("does NOT fit: {}\n", p.why_not);
  out += fmt::format("fits: yes\nGPU: {}\n", p.slots_note);
  if (p.all_on_gpu)
    out += "  every expert stays resident on the GPU\n";
  else
    out += fmt::format("  {} of {} experts ({:.1f}%) cached on the GPU, the rest in {}\n",
                       p.gpu_slots, s.expert_total(), 100 * p.gpu_hit,
                       p.all_in_ram
                           ? "host RAM"
                           : fmt::format("host RAM ({} experts, {:.1f}%) and on NVMe", p.host_slots,
                                         100.0 * p.host_slots / double(s.expert_total())));
  out += fmt::format(
      "decode: {:.1f} tok/s (per token: dense {:.2f} ms, per-layer fixed {:.2f} ms, GPU experts "
      "{:.2f} ms, PCIe {:.2f} ms, CPU experts {:.2f} ms, NVMe {:.2f} ms; {:.0f}% of misses on the "
      "CPU); bottleneck: {}\n",
      p.decode_tok_s, p.t_dense * 1e3, p.t_layers * 1e3, p.t_gpu_experts * 1e3, p.t_copies * 1e3,
      p.t_cpu * 1e3, p.t_nvme * 1e3, 100 * p.cpu_share, p.decode_bottleneck);
  out += fmt::format("prefill: {:.0f} tok/s (chunks of {} tokens); bottleneck: {}\n",
                     p.prefill_tok_s, o.chunk, p.prefill_bottleneck);
  out += fmt::format(
      "assumptions: uniform routing (GPU hit rate = share of experts cached: {:.1f}%; record a "
      "trace and run `coldstream tune` for measured rates); Q4 experts; KV cache of {} tokens, "
      "decode at half of it; {} of RAM left to the OS; misses split between PCIe and CPU in the "
      "best proportion; copies overlap compute in prefill; rates from {}\n",
      100 * p.gpu_hit, o.context, format_bytes(double(o.os_ram)), hw.origin);
  return out;
}

}  // namespace cs
