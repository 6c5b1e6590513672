// `coldstream plan`: will a model run on a machine, what stays where, and how fast
// (runtime/eval/capacity_plan.h). The machine is a hardware profile (configs/hardware/*.toml)
// and/or flags.
#include <fmt/format.h>

#include "apps/cli_common.h"
#include "common/error.h"
#include "common/units.h"
#include "runtime/eval/capacity_plan.h"

namespace cs::cli {
namespace {

struct PlanArgs {
  std::string model, gpu, hardware_dir, vram, vram_bw, pcie, ram, ram_bw, nvme;
  int cores = 0, ctx = 4096, chunk = 256;
};

void run_plan(const PlanArgs& a) {
  const ModelShape shape = load_model_shape(a.model);
  HardwareProfile hw;
  const std::string dir = a.hardware_dir.empty() ? default_hardware_dir() : a.hardware_dir;
  if (!a.gpu.empty()) {
    hw = load_hardware_profile(a.gpu, dir);
  } else {
    if (a.vram.empty() || a.pcie.empty())
      fail(ErrorKind::kInvalidArgument,
           "plan: give --gpu NAME (one of: {}) or at least --vram and --pcie",
           fmt::join(hardware_profile_names(dir), ", "));
    hw.name = "custom GPU";
    // Without a profile: a GPU memory rate of 1 TB/s and an expert GEMV at 60% of it.
    hw.vram_bw = 1e12;
    hw.gpu_kernel_rate = 0.6e12;
    hw.gpu_tflops = 50;
    hw.ram = 64ull << 30;
    hw.ram_bw = 50e9;
    hw.nvme = 5e9;
    hw.cores = 8;
  }
  bool custom = a.gpu.empty();
  if (!a.vram.empty()) hw.vram = parse_bytes(a.vram, "--vram");
  if (!a.vram_bw.empty()) hw.vram_bw = parse_rate(a.vram_bw, "--vram-bw");
  if (!a.pcie.empty()) hw.pcie = parse_rate(a.pcie, "--pcie");
  if (!a.ram.empty()) hw.ram = parse_bytes(a.ram, "--ram");
  if (!a.ram_bw.empty()) hw.ram_bw = parse_rate(a.ram_bw, "--ram-bw");
  if (!a.nvme.empty()) hw.nvme = parse_rate(a.nvme, "--nvme");
  if (a.cores > 0) hw.cores = a.cores;
  custom = custom || !a.vram.empty() || !a.pcie.empty() || !a.ram.empty() || !a.ram_bw.empty() ||
           !a.nvme.empty() || a.cores > 0 || !a.vram_bw.empty();
  if (custom) hw.origin = hw.origin.empty() ? "flags" : hw.origin + " and flags";
  CapacityPlanOptions o;
  o.context = a.ctx;
  o.chunk = a.chunk;
  const CapacityPlan p = plan_capacity(shape, hw, o);
  fmt::print("{}", format_capacity_plan(shape, hw, o, p));
}

}  // namespace

void register_plan(CLI::App& app) {
  auto a = std::make_shared<PlanArgs>();
  CLI::App* cmd = app.add_subcommand(
      "plan",
      "Will a model fit this machine, what stays resident, and the expected decode and "
      "prefill speed (cost model; assumptions printed)");
  cmd->add_option("--model,-m", a->model,
                  "A .cst file, a Hugging Face directory or a synth shape (qwen3-235b-a22b, "
                  "qwen3-30b-a3b, mixtral-8x7b)")
      ->required();
  cmd->add_option("--gpu", a->gpu,
                  "Hardware profile: rtx3090, rtx4090, rtx5090, rtx6000ada, h100, h200 (files in "
                  "configs/hardware) or a TOML file");
  cmd->add_option("--hardware-dir", a->hardware_dir, "Directory of hardware profiles");
  cmd->add_option("--vram", a->vram, "GPU memory, e.g. 24GiB");
  cmd->add_option("--vram-bw", a->vram_bw, "GPU memory bandwidth, e.g. 1000GB/s");
  cmd->add_option("--pcie", a->pcie, "Host-to-GPU copy rate, e.g. 25GB/s");
  cmd->add_option("--ram", a->ram, "Host RAM, e.g. 128GiB");
  cmd->add_option("--ram-bw", a->ram_bw, "Host DRAM bandwidth, e.g. 80GB/s");
  cmd->add_option("--nvme", a->nvme, "NVMe read rate, e.g. 7GB/s");
  cmd->add_option("--cores", a->cores, "CPU cores for CPU experts");
  cmd->add_option("--ctx", a->ctx, "KV cache tokens")->capture_default_str();
  cmd->add_option("--chunk", a->chunk, "Prefill tokens per step")->capture_default_str();
  cmd->callback([a] { run_plan(*a); });
}

}  // namespace cs::cli
