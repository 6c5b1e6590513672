// A fork-join thread pool for per-layer CPU work: one thread per physical core (performance
// cores first on hybrid CPUs, optionally only the cores of one NUMA node, e.g. the GPU's), each
// worker pinned to its core. run() hands out task indices dynamically and returns when every task
// is done; the calling thread takes part as thread 0. Idle workers spin for a short while before
// sleeping, so back-to-back layers pay no wake-up latency.
//
// Thread-safety: run() may be called by one thread at a time (any thread, not only the creator).
// Tasks of one run() execute concurrently on different threads. A task that throws: the first
// exception is rethrown by run() after every task has finished or been skipped.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace cs {

struct ThreadPoolOptions {
  // Threads taking part in run(), the caller included. 0: one per selected core.
  int threads = 0;
  // Logical CPU ids (as the OS numbers them) to run on, one thread each, caller's first.
  // Empty: chosen with hwloc: one per physical core, performance cores only on hybrid CPUs.
  // Listed CPUs must be in the process's affinity mask (cs::Error naming the CPU otherwise).
  std::vector<int> cores;
  // With `cores` empty: only cores of this NUMA node (the GPU's, for the hybrid path). -1: all.
  int numa_node = -1;
  bool pin = true;    // bind each worker to its core (the caller is never re-bound)
  int spin_us = 200;  // how long an idle worker spins waiting for work before it sleeps
};

// The cores ThreadPool would use for these options (hwloc; falls back to 0..n-1 without it).
std::vector<int> select_cores(const ThreadPoolOptions& options);

class ThreadPool {
 public:
  explicit ThreadPool(const ThreadPoolOptions& options = {});
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Threads taking part in run(): the workers plus the caller.
  int size() const { return int(workers_.size()) + 1; }
  // The core of each thread (index 0: the core suggested for the caller); may be empty.
  const std::vector<int>& cores() const { return cores_; }

  // Calls fn(task, thread) for every task in [0, n_tasks), thread in [0, size()).
  template <typename F>
  void run(int64_t n_tasks, F&& fn) {
    run_impl(n_tasks, &call_task<std::remove_reference_t<F>>, ctx_of(&fn), nullptr, nullptr);
  }
  // The same, and the calling thread first runs caller_first() while the workers start on the
  // tasks, then joins them (the hybrid path queues its GPU kernels there). An exception from
  // caller_first is rethrown like a task's, after every task has run.
  template <typename F, typename G>
  void run(int64_t n_tasks, F&& fn, G&& caller_first) {
    run_impl(n_tasks, &call_task<std::remove_reference_t<F>>, ctx_of(&fn),
             &call_first<std::remove_reference_t<G>>, ctx_of(&caller_first));
  }

  // Binds the calling thread to cores()[0] (for a dedicated thread that drives CPU experts).
  void pin_caller() const;

 private:
  using TaskFn = void (*)(void*, int64_t, int);
  using FirstFn = void (*)(void*);
  template <typename Fn>
  static void call_task(void* ctx, int64_t task, int thread) {
    (*static_cast<Fn*>(ctx))(task, thread);
  }
  template <typename Fn>
  static void call_first(void* ctx) {
    (*static_cast<Fn*>(ctx))();
  }
  static void* ctx_of(const void* callable) { return const_cast<void*>(callable); }
  void run_impl(int64_t n_tasks, TaskFn fn, void* ctx, FirstFn first, void* first_ctx);
  void worker_main(int index);
  // Claims and runs tasks of the current job until none is left.
  void drain(int thread);

  std::vector<int> cores_;
  std::vector<std::thread> workers_;
  int spin_us_;

  // The current job. Written by run() before `next_` publishes it (release); read by a thread
  // only after it claimed a task of that job, i.e. while run() is still waiting for that task.
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  // The claim word: job generation (16 bits) | task count (24 bits) | next task (24 bits). A claim
  // is one CAS on the whole word, so a worker that wakes late can never take a task of a job
  // other than the one whose count it checked.
  std::atomic<uint64_t> next_{0};
  std::atomic<int64_t> done_{0};       // tasks of the current job finished
  std::atomic<uint32_t> wake_gen_{0};  // bumped per job and on shutdown; workers wait on it
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::mutex error_mu_;
  std::exception_ptr error_;  // GUARDED_BY(error_mu_)
};

}  // namespace cs
