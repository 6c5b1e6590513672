#include "apps/bench_channels.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/dram_probe.h"
#include "offload/copy_engine.h"
#include "offload/cuda_support.h"
#include "offload/host_arena.h"
#include "offload/nvme_reader.h"

namespace cs::cli {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Copies `total` bytes in chunks of `chunk` from `src` into a device buffer, best of 3.
double copy_rate(CopyEngine& e, void* dst, const uint8_t* src, size_t chunk, size_t span,
                 size_t total) {
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = Clock::now();
    uint64_t last = 0;
    for (size_t k = 0; k * chunk < total; ++k)  // rotate through the span: caches do not flatter
      last = e.copy(dst, src + (k % (span / chunk)) * chunk, chunk);
    e.wait(last);
    best = std::max(best, double(total) / seconds_since(t0));
  }
  return best;
}

// Both channels at once, as hybrid decode runs them: copies of `chunk` bytes (a few queued at a
// time, rotating through `span`) for as long as `reader` takes. Returns {copy rate, DRAM read
// rate} measured while the other ran: the copies' DMA reads the same host memory.
std::pair<double, double> both_rates(CopyEngine& e, void* dst, const uint8_t* src, size_t chunk,
                                     size_t span, DramProbe& reader) {
  std::atomic<bool> stop{false};
  uint64_t copied = 0;
  double copy_seconds = 0;
  std::thread copier([&] {
    const auto t0 = Clock::now();
    std::vector<uint64_t> queued;
    for (size_t k = 0; !stop.load(std::memory_order_relaxed); ++k) {
      queued.push_back(e.copy(dst, src + (k % (span / chunk)) * chunk, chunk));
      if (queued.size() > 4) {
        e.wait(queued.front());
        queued.erase(queued.begin());
        copied += chunk;
      }
    }
    for (uint64_t t : queued) e.wait(t);
    copied += queued.size() * chunk;
    copy_seconds = seconds_since(t0);
  });
  const double dram = reader.rate(3);
  stop = true;
  copier.join();
  return {copy_seconds > 0 ? double(copied) / copy_seconds : 0, dram};
}

// O_DIRECT preads of 4 MiB blocks spread over the file by `threads` threads.
double disk_raw_rate(const std::string& path, uint64_t limit, int threads, std::string& notes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) {
    notes +=
        fmt::format("raw disk rate: O_DIRECT open of {} failed ({})\n", path, std::strerror(errno));
    return 0;
  }
  const uint64_t size = uint64_t(::lseek(fd, 0, SEEK_END)) / 4096 * 4096;
  const size_t block = size_t(std::min<uint64_t>(4u << 20, size));
  const uint64_t total = block ? std::min(size, limit) / block * block : 0;
  std::atomic<uint64_t> next{0}, got{0};
  const auto t0 = Clock::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&] {
      void* buf = std::aligned_alloc(4096, block);
      for (uint64_t off; (off = next.fetch_add(block)) < total;) {
        const ssize_t n = ::pread(fd, buf, block, off_t(off));
        if (n <= 0) break;
        got += uint64_t(n);
      }
      std::free(buf);
    });
  for (auto& th : ts) th.join();
  const double s = seconds_since(t0);
  ::close(fd);
  return s > 0 ? double(got.load()) / s : 0;
}

double disk_tier_rate(const ExpertLocator& loc, const OffloadConfig& cfg, uint64_t limit,
                      std::string& notes) {
  const uint64_t slot = loc.max_blob_bytes();
  const int n =
      int(std::min<uint64_t>(uint64_t(loc.present_count()), std::max<uint64_t>(1, limit / slot)));
  ArenaOptions ao;
  ao.bytes = std::min<uint64_t>(uint64_t(n), 256) * slot;
  HostArena arena(ao);
  NvmeOptions o;
  o.queue_depth = cfg.io.queue_depth;
  o.read_size = uint32_t(cfg.io.read_size);
  o.direct_io = cfg.io.direct_io;
  o.register_buffers = cfg.io.register_buffers;
  NvmeReader r(loc.path, o, {arena.data(), arena.size()});
  for (const auto& note : r.notes()) notes += "NVMe tier: " + note + "\n";
  const int ring = int(arena.size() / slot);
  std::vector<uint64_t> tickets;
  const auto t0 = Clock::now();
  int i = 0;
  for (const ExpertBlobLocation& b : loc.blobs) {
    if (!b.present()) continue;
    if (i >= n) break;
    if (int(tickets.size()) >= ring) {  // reuse the oldest buffer once its read is done
      r.wait(tickets[tickets.size() - size_t(ring)]);
    }
    tickets.push_back(
        r.submit({{0, 0}, b.offset, b.bytes, b.xxh3, arena.data() + size_t(i % ring) * slot}));
    ++i;
  }
  r.wait_idle();
  const double s = seconds_since(t0);
  return s > 0 ? double(r.stats().bytes) / s : 0;
}

}  // namespace

Channels measure_channels(Backend& backend, const ExpertLocator& locator,
                          const OffloadConfig& config, int threads, uint64_t dram_bytes) {
  Channels c;
  const size_t chunk = std::max<size_t>(locator.max_blob_bytes(), 1 << 20);
  const size_t span = 16 * chunk;
  // PCIe is measured whenever a GPU is visible, whatever backend computes.
  const bool gpu = cuda_available() && config.device.backend != "cpu";
  std::shared_ptr<void> device = gpu ? cuda_device_alloc(config.device.gpu, chunk) : nullptr;
  Buffer host_dst = device ? Buffer() : backend.alloc(chunk);
  void* dst = device ? device.get() : host_dst.get();
  std::unique_ptr<CopyEngine> e = device ? make_cuda_copy_engine(config.device.gpu, nullptr)
                                         : make_host_copy_engine({config.device.copy_rate, true});
  std::unique_ptr<Pinner> pinner = device ? make_cuda_pinner() : nullptr;
  if (!device) c.notes += "copies: no GPU visible, host-only copy engine (memcpy)\n";
  ArenaOptions ao;
  ao.bytes = span;
  ao.pinner = pinner.get();
  ao.background = false;
  HostArena pinned(ao);
  std::memset(pinned.data(), 1, span);
  c.copy_rate = copy_rate(*e, dst, pinned.data(), chunk, span, 32 * chunk);
  if (pinner) {
    std::vector<uint8_t> pageable(span + 4096, 1);
    const uint8_t* p = reinterpret_cast<const uint8_t*>(
        (reinterpret_cast<uintptr_t>(pageable.data()) + 4095) / 4096 * 4096);
    c.pageable_copy_rate = copy_rate(*e, dst, p, chunk, span, 8 * chunk);
  }
  ThreadPoolOptions po = pool_options(cpu_options(config.cpu));  // the CPU experts' pool
  if (threads > 0) po.threads = threads;
  ThreadPool pool(po);
  DramProbe reader(pool, size_t(dram_bytes));
  c.dram_read_rate = reader.rate(3);
  std::tie(c.copy_rate_with_reads, c.dram_read_with_copies) =
      both_rates(*e, dst, pinned.data(), chunk, span, reader);
  if (!locator.path.empty()) {
    const uint64_t limit = 8ull << 30;
    c.disk_raw_rate = disk_raw_rate(locator.path, limit, 4, c.notes);
    c.disk_tier_rate = disk_tier_rate(locator, config, limit, c.notes);
  }
  return c;
}

std::string format_channels(const Channels& c) {
  std::string s = fmt::format("channels: host->{} copies {:.2f} GB/s", "device", c.copy_rate / 1e9);
  if (c.pageable_copy_rate > 0)
    s += fmt::format(" (pageable {:.2f} GB/s)", c.pageable_copy_rate / 1e9);
  s += fmt::format(", DRAM read {:.1f} GB/s", c.dram_read_rate / 1e9);
  if (c.copy_rate_with_reads > 0)
    s += fmt::format("; both at once: copies {:.2f} + DRAM read {:.1f} = {:.1f} GB/s",
                     c.copy_rate_with_reads / 1e9, c.dram_read_with_copies / 1e9,
                     c.combined_rate() / 1e9);
  if (c.disk_raw_rate > 0)
    s += fmt::format(", disk O_DIRECT {:.2f} GB/s, NVMe tier {:.2f} GB/s ({:.0f}% of raw)",
                     c.disk_raw_rate / 1e9, c.disk_tier_rate / 1e9,
                     100.0 * c.disk_tier_rate / c.disk_raw_rate);
  return s + "\n" + c.notes;
}

}  // namespace cs::cli
