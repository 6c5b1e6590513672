#include "kernels/cpu/thread_pool.h"

#include <hwloc.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "common/error.h"

namespace cs {
namespace {

constexpr uint64_t kFieldMask = (uint64_t(1) << 24) - 1;

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

void bind_thread(pthread_t t, int core) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(core, &set);
  pthread_setaffinity_np(t, sizeof(set), &set);  // best effort: a refused binding is not an error
}

// "0-3,8" for a set of CPUs.
std::string cpu_list(const cpu_set_t& set) {
  std::string out;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &set)) continue;
    int e = c;
    while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, &set)) ++e;
    if (!out.empty()) out += ',';
    out += std::to_string(c);
    if (e > c) out += '-' + std::to_string(e);
    c = e;
  }
  return out.empty() ? "none" : out;
}

// One logical CPU per physical core, in the order hwloc lists them.
std::vector<int> hwloc_cores(int numa_node) {
  hwloc_topology_t topo;
  if (hwloc_topology_init(&topo) != 0) return {};
  std::vector<int> cores;
  if (hwloc_topology_load(topo) == 0) {
    // Hybrid CPUs: kinds are listed by increasing efficiency rank (hwloc's "efficiency" is
    // intrinsic performance), so the last kind holds the performance cores. With unknown ranks
    // (-1) the order means nothing and every core is used.
    hwloc_bitmap_t perf = nullptr;
    const int n_kinds = hwloc_cpukinds_get_nr(topo, 0);
    if (n_kinds > 1) {
      perf = hwloc_bitmap_alloc();
      int efficiency = -1;
      if (hwloc_cpukinds_get_info(topo, unsigned(n_kinds - 1), perf, &efficiency, nullptr, nullptr,
                                  0) != 0 ||
          efficiency < 0) {
        hwloc_bitmap_free(perf);
        perf = nullptr;
      }
    }
    hwloc_const_cpuset_t node_set = nullptr;
    if (numa_node >= 0) {
      hwloc_obj_t node = hwloc_get_numanode_obj_by_os_index(topo, unsigned(numa_node));
      if (!node) {
        hwloc_topology_destroy(topo);
        if (perf) hwloc_bitmap_free(perf);
        fail(ErrorKind::kInvalidArgument, "thread pool: NUMA node {} does not exist", numa_node);
      }
      node_set = node->cpuset;
    }
    const int n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    for (int i = 0; i < n; ++i) {
      hwloc_obj_t core = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, unsigned(i));
      if (!core || !core->cpuset || hwloc_bitmap_iszero(core->cpuset)) continue;
      if (perf && !hwloc_bitmap_intersects(core->cpuset, perf)) continue;
      if (node_set && !hwloc_bitmap_intersects(core->cpuset, node_set)) continue;
      cores.push_back(hwloc_bitmap_first(core->cpuset));
    }
    if (perf) hwloc_bitmap_free(perf);
  }
  hwloc_topology_destroy(topo);
  return cores;
}

}  // namespace

std::vector<int> select_cores(const ThreadPoolOptions& o) {
  if (o.threads < 0)
    fail(ErrorKind::kInvalidArgument, "thread pool: threads = {} (expected 0 for auto, or >= 1)",
         o.threads);
  std::vector<int> cores = o.cores;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (!cores.empty() && sched_getaffinity(0, sizeof(allowed), &allowed) == 0)
    for (int c : cores)
      if (c < 0 || c >= CPU_SETSIZE || !CPU_ISSET(c, &allowed))
        fail(ErrorKind::kInvalidArgument,
             "thread pool: CPU {} is not available to this process (available: {})", c,
             cpu_list(allowed));
  if (cores.empty()) cores = hwloc_cores(o.numa_node);
  if (cores.empty()) {
    const int n = std::max(1u, std::thread::hardware_concurrency());
    for (int i = 0; i < n; ++i) cores.push_back(i);
  }
  for (int c : cores)
    if (c < 0 || c >= CPU_SETSIZE)
      fail(ErrorKind::kInvalidArgument, "thread pool: core {} is not a valid CPU id", c);
  if (o.threads > 0) {
    // More threads than cores: wrap around (oversubscription is the caller's explicit choice).
    std::vector<int> out;
    for (int i = 0; i < o.threads; ++i) out.push_back(cores[size_t(i) % cores.size()]);
    cores = std::move(out);
  }
  return cores;
}

ThreadPool::ThreadPool(const ThreadPoolOptions& options)
    : cores_(select_cores(options)), spin_us_(std::max(0, options.spin_us)) {
  const int n = int(cores_.size());
  workers_.reserve(size_t(n - 1));
  for (int i = 1; i < n; ++i) {
    workers_.emplace_back([this, i] { worker_main(i); });
    if (options.pin) bind_thread(workers_.back().native_handle(), cores_[size_t(i)]);
  }
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  wake_gen_.fetch_add(1);
  wake_gen_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::pin_caller() const {
  if (!cores_.empty()) bind_thread(pthread_self(), cores_[0]);
}

void ThreadPool::drain(int thread) {
  uint64_t cur = next_.load(std::memory_order_acquire);
  for (;;) {
    const int64_t task = int64_t(cur & kFieldMask), count = int64_t((cur >> 24) & kFieldMask);
    if (task >= count) return;
    if (!next_.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel,
                                     std::memory_order_acquire))
      continue;
    try {
      fn_(ctx_, task, thread);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu_);
      if (!error_) error_ = std::current_exception();
    }
    done_.fetch_add(1, std::memory_order_acq_rel);
    cur = next_.load(std::memory_order_acquire);
  }
}

void ThreadPool::worker_main(int index) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t g = wake_gen_.load(std::memory_order_acquire);
    if (g == seen) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int spins = 0; (g = wake_gen_.load(std::memory_order_acquire)) == seen; ++spins) {
        cpu_relax();
        if ((spins & 255) == 255 &&
            std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(spin_us_)) {
          // seq_cst on both sides: either run() sees this sleeper and notifies, or wait() sees
          // the new generation.
          sleepers_.fetch_add(1);
          wake_gen_.wait(seen);
          sleepers_.fetch_sub(1);
        }
      }
    }
    seen = g;
    if (stop_.load()) return;
    drain(index);  // a late worker joins whatever job is current, or finds nothing left
  }
}

void ThreadPool::run_impl(int64_t n_tasks, TaskFn fn, void* ctx, FirstFn first, void* first_ctx) {
  if (n_tasks <= 0) {
    if (first) first(first_ctx);
    return;
  }
  if (n_tasks > int64_t(kFieldMask))
    fail(ErrorKind::kInvalidArgument, "thread pool: {} tasks in one run (at most {})", n_tasks,
         kFieldMask);
  const uint64_t gen = ((next_.load(std::memory_order_relaxed) >> 48) + 1) & 0xffffu;
  fn_ = fn;
  ctx_ = ctx;
  done_.store(0, std::memory_order_relaxed);
  next_.store((gen << 48) | (uint64_t(n_tasks) << 24), std::memory_order_release);
  if (!workers_.empty() && (n_tasks > 1 || first)) {
    wake_gen_.fetch_add(1);
    if (sleepers_.load() > 0) wake_gen_.notify_all();
  }
  if (first) {
    try {
      first(first_ctx);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu_);
      if (!error_) error_ = std::current_exception();
    }
  }
  drain(0);
  for (int spins = 0; done_.load(std::memory_order_acquire) < n_tasks; ++spins) {
    cpu_relax();
    if ((spins & 1023) == 1023) std::this_thread::yield();  // shared or oversubscribed machines
  }
  std::exception_ptr err;
  {
    std::lock_guard<std::mutex> lock(error_mu_);
    err = std::exchange(error_, nullptr);
  }
  if (err) std::rethrow_exception(err);
}

}  // namespace cs
