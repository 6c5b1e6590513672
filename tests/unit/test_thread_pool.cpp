// The fork-join thread pool (kernels/cpu/thread_pool.h): every task runs exactly once, thread
// indices are in range, back-to-back jobs never mix (late workers), exceptions reach the caller.
// Also built and run under ThreadSanitizer (CS_SANITIZE=thread; docs/TESTING.md).
#include <doctest/doctest.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/thread_pool.h"

using namespace cs;

TEST_CASE("thread pool: every task runs once, on a thread index in range") {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(ThreadPoolOptions{.threads = threads});
    REQUIRE(pool.size() == threads);
    for (int64_t n : {0, 1, 2, 3, 17, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int> bad_thread{0};
      pool.run(n, [&](int64_t task, int thread) {
        hits[size_t(task)].fetch_add(1);
        if (thread < 0 || thread >= pool.size()) bad_thread.fetch_add(1);
      });
      int wrong = 0;
      for (auto& h : hits) wrong += h.load() != 1;
      CHECK(wrong == 0);
      CHECK(bad_thread.load() == 0);
    }
  }
}

TEST_CASE("thread pool: many short jobs back to back keep their tasks apart") {
  ThreadPool pool(ThreadPoolOptions{.threads = 4, .spin_us = 20});
  std::vector<int64_t> sums(3000);
  for (size_t j = 0; j < sums.size(); ++j) {
    const int n = 1 + int(j % 7);
    std::atomic<int64_t> sum{0};
    pool.run(n, [&](int64_t task, int) { sum.fetch_add(int64_t(j) * 100 + task); });
    sums[j] = sum.load();
  }
  int wrong = 0;
  for (size_t j = 0; j < sums.size(); ++j) {
    const int64_t n = 1 + int64_t(j % 7);
    wrong += sums[j] != int64_t(j) * 100 * n + n * (n - 1) / 2;
  }
  CHECK(wrong == 0);
  // After idling past the spin time the workers sleep; the next job must still wake them.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::atomic<int> count{0};
  pool.run(64, [&](int64_t, int) { count.fetch_add(1); });
  CHECK(count.load() == 64);
}

TEST_CASE("thread pool: the first exception of a job reaches run(); the pool stays usable") {
  ThreadPool pool(ThreadPoolOptions{.threads = 3});
  std::atomic<int> ran{0};
  CHECK_THROWS_AS(pool.run(50,
                           [&](int64_t task, int) {
                             ran.fetch_add(1);
                             if (task == 7) throw std::runtime_error("task 7 failed");
                           }),
                  std::runtime_error);
  CHECK(ran.load() == 50);  // the other tasks still ran
  std::atomic<int> after{0};
  pool.run(10, [&](int64_t, int) { after.fetch_add(1); });
  CHECK(after.load() == 10);
}

TEST_CASE("thread pool: the caller's first work runs once on the caller, beside the tasks") {
  ThreadPool pool(ThreadPoolOptions{.threads = 3});
  for (int64_t n : {0, 1, 40}) {
    std::atomic<int> ran{0};
    int first = 0;
    std::thread::id first_on;
    pool.run(
        n, [&](int64_t, int) { ran.fetch_add(1); },
        [&] {
          ++first;
          first_on = std::this_thread::get_id();
        });
    CHECK(ran.load() == n);
    CHECK(first == 1);
    CHECK(first_on == std::this_thread::get_id());
  }
  // A single task goes to a worker while the caller is busy: it finishes before the caller's
  // work returns (with 3 threads the workers are woken for it).
  std::atomic<bool> task_done{false};
  bool seen_done = false;
  pool.run(
      1, [&](int64_t, int) { task_done.store(true); },
      [&] {
        const auto t0 = std::chrono::steady_clock::now();
        while (!task_done.load() && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5))
          std::this_thread::yield();
        seen_done = task_done.load();
      });
  CHECK(seen_done);
  // An exception from the caller's work reaches run() after every task ran.
  std::atomic<int> ran{0};
  CHECK_THROWS_AS(pool.run(
                      20, [&](int64_t, int) { ran.fetch_add(1); },
                      [] { throw std::runtime_error("caller failed"); }),
                  std::runtime_error);
  CHECK(ran.load() == 20);
}

TEST_CASE("thread pool: core selection honours explicit lists and rejects bad options") {
  const std::vector<int> cores = select_cores({});
  CHECK(!cores.empty());
  // The first CPU this process may run on, and one it may not (the mask may exclude CPU 0).
  cpu_set_t allowed;
  REQUIRE(sched_getaffinity(0, sizeof(allowed), &allowed) == 0);
  int first = -1, outside = -1;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &allowed) && first < 0) first = c;
    if (!CPU_ISSET(c, &allowed)) outside = c;
  }
  REQUIRE(first >= 0);
  CHECK(select_cores(ThreadPoolOptions{.threads = 3, .cores = {first}}) ==
        std::vector<int>{first, first, first});
  CHECK(select_cores(ThreadPoolOptions{.cores = {first}}) == std::vector<int>{first});
  CHECK_THROWS_AS(select_cores(ThreadPoolOptions{.threads = -1}), Error);
  CHECK_THROWS_AS(select_cores(ThreadPoolOptions{.cores = {-3}}), Error);
  CHECK_THROWS_AS(select_cores(ThreadPoolOptions{.numa_node = 999}), Error);
  if (outside >= 0) {  // a CPU outside the mask: an error naming it and what is available
    try {
      select_cores(ThreadPoolOptions{.cores = {first, outside}});
      FAIL("no error for CPU " << outside);
    } catch (const Error& e) {
      const std::string m = e.what();
      CHECK(m.find("CPU " + std::to_string(outside) + " is not available") != std::string::npos);
      CHECK(m.find("available: ") != std::string::npos);
    }
  }
  ThreadPool pool(ThreadPoolOptions{.cores = {first}});
  CHECK(pool.size() == 1);
  MESSAGE("default pool here: " << cores.size() << " threads");
}
