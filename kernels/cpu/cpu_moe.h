// The CPU MoE kernel: every expert a layer sends to the CPU, computed together on a thread pool,
// straight from the packed expert blobs in (pinned) host memory.
//
// For each task (one expert and the token rows it serves):
//   out[rows[j]] += weights[j] * down(silu(gate x) * up x),  x = x[rows[j]]
// Q4/Q8 experts: activations are quantized to int8 per block of 32 (fp32 scale per block) on the
// fly, both for x and for the intermediate; gate and up are computed in one pass per row pair and
// combined with SiLU before the intermediate is quantized. F32/F16/BF16 experts run in fp32.
//
// Work split (two fork-joins per call): phase A cuts every expert's I rows into 64-row units
// (gate+up of all its tokens); phase B cuts H into 64-row units and, for each unit, walks every
// expert's down rows and adds into out, so no two threads write the same output element and the
// sum over experts is in task order: results do not depend on the thread count.
//
// Hybrid path: x and out are host buffers (the hidden states copied down, the result copied up);
// the caller adds `out` to the GPU experts' share. A dedicated host thread may call run() while
// another thread drives the GPU; pool.pin_caller() binds it to the pool's first core.
//
// Thread-safety: a CpuMoe is used by one thread at a time (it owns scratch memory). Its pool must
// not be running other work during run().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/types.h"

namespace cs {
namespace cpu {
struct CpuKernels;
}

struct CpuMoeTask {
  ExpertWeights w;                 // host views; gate/up [I][H], down [H][I]
  const int32_t* rows = nullptr;   // [n] rows of x and out this expert serves
  const float* weights = nullptr;  // [n] router weight of each row
  int n = 0;
};

struct CpuMoeArgs {
  const float* x = nullptr;  // [T][H] hidden states (host)
  float* out = nullptr;      // [T][H] results (host)
  int T = 0, hidden = 0;
  bool accumulate = true;  // false: every row of out is overwritten (rows no task uses get 0)
};

class CpuMoe {
 public:
  // kAuto: the best instruction set of this CPU; a named level forces it (throws if unsupported).
  explicit CpuMoe(CpuIsa isa = CpuIsa::kAuto);
  // On a given kernel table (tests: the AVX-512 layout emulated on machines without AVX-512).
  explicit CpuMoe(const cpu::CpuKernels& kernels);
  ~CpuMoe();
  CpuMoe(const CpuMoe&) = delete;
  CpuMoe& operator=(const CpuMoe&) = delete;

  CpuIsa isa() const { return isa_; }
  // Software prefetch distance in bytes of weight codes (0 turns it off; default
  // kCpuPrefetchBytes).
  void set_prefetch(int bytes) { prefetch_ = bytes < 0 ? 0 : bytes; }
  int prefetch() const { return prefetch_; }

  // Computes the tasks. Throws cs::Error (kInvalidArgument) on inconsistent shapes, dtypes or
  // rows, before any output is written.
  // REQUIRES: quantized matrices have H and I multiples of 32 and of their group (32, 64, 128).
  // caller_work, when given, runs on the calling thread while the pool's workers start on the
  // experts' gate and up rows (then the caller joins them); it runs even when there is no task.
  void run(const CpuMoeArgs& args, const CpuMoeTask* tasks, int n_tasks, ThreadPool& pool,
           const std::function<void()>* caller_work = nullptr);

 private:
  struct Scratch;
  CpuIsa isa_;
  const cpu::CpuKernels* kernels_;
  int prefetch_ = kCpuPrefetchBytes;
  std::unique_ptr<Scratch> scratch_;
};

// One-shot convenience over CpuMoe (allocates scratch each call).
void cpu_moe(const CpuMoeArgs& args, const CpuMoeTask* tasks, int n_tasks, ThreadPool& pool,
             CpuIsa isa = CpuIsa::kAuto);

}  // namespace cs
