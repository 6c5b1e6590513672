// The host-only copy engine: memcpy on a worker thread, throttled to a rate when asked, so the
// offload pipeline (in-flight copies, waits, overlap) behaves as with a GPU.
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "offload/copy_engine.h"

namespace cs {
namespace {

class HostCopyEngine final : public CopyEngine {
 public:
  explicit HostCopyEngine(HostCopyOptions o) : opt_(o) {
    if (opt_.async) worker_ = std::thread([this] { run(); });
  }
  ~HostCopyEngine() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
  }
  const char* name() const override { return opt_.rate > 0 ? "host-throttled" : "host"; }

  uint64_t copy(void* dst, const void* src, size_t bytes) override {
    std::unique_lock<std::mutex> lock(mu_);
    const uint64_t t = ++issued_;
    if (!opt_.async) {
      lock.unlock();
      do_copy({dst, src, bytes});
      lock.lock();
      completed_ = t;
      return t;
    }
    queue_.push_back({dst, src, bytes});
    cv_.notify_all();
    return t;
  }
  bool done(uint64_t ticket) override {
    std::lock_guard<std::mutex> lock(mu_);
    return completed_ >= ticket;
  }
  void wait(uint64_t ticket) override {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return completed_ >= ticket; });
  }
  void fence_compute() override {}
  void order_compute(uint64_t ticket) override { wait(ticket); }
  void synchronize() override {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return completed_ >= issued_; });
  }
  uint64_t bytes_copied() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return bytes_;
  }

 private:
  struct Job {
    void* dst;
    const void* src;
    size_t bytes;
  };
  void do_copy(const Job& j) {
    const auto t0 = std::chrono::steady_clock::now();
    std::memcpy(j.dst, j.src, j.bytes);
    if (opt_.rate > 0)
      std::this_thread::sleep_until(t0 +
                                    std::chrono::duration<double>(double(j.bytes) / opt_.rate));
    std::lock_guard<std::mutex> lock(mu_);
    bytes_ += j.bytes;
  }
  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      const Job j = queue_.front();
      queue_.pop_front();
      lock.unlock();
      do_copy(j);
      lock.lock();
      ++completed_;
      done_cv_.notify_all();
    }
  }

  HostCopyOptions opt_;
  mutable std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::deque<Job> queue_;   // GUARDED_BY(mu_)
  uint64_t issued_ = 0;     // GUARDED_BY(mu_)
  uint64_t completed_ = 0;  // GUARDED_BY(mu_)
  uint64_t bytes_ = 0;      // GUARDED_BY(mu_)
  bool stop_ = false;       // GUARDED_BY(mu_)
  std::thread worker_;
};

}  // namespace

std::unique_ptr<CopyEngine> make_host_copy_engine(HostCopyOptions options) {
  return std::make_unique<HostCopyEngine>(options);
}

}  // namespace cs
