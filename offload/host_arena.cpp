#include "offload/host_arena.h"

#include <sys/mman.h>

#include <chrono>
#include <cstring>

#include "common/error.h"
#include "common/units.h"
#include "offload/numa.h"

namespace cs {

std::vector<PinRange> pin_ranges(uint64_t bytes, uint64_t chunk, uint64_t region, uint64_t blob) {
  std::vector<PinRange> out;
  if (chunk == 0) chunk = 256ull << 20;
  if (region == 0 || blob == 0 || blob > region) {
    for (uint64_t off = 0; off < bytes; off += chunk)
      out.push_back({off, std::min(chunk, bytes - off)});
    return out;
  }
  const uint64_t step = std::max<uint64_t>(1, chunk / blob) * blob;  // whole blobs per range
  for (uint64_t r = 0; r < bytes; r += region) {
    const uint64_t end = std::min(r + region, bytes);
    for (uint64_t off = r; off < end;) {
      // The last range of a region takes the region's tail (too small for a blob) with it.
      const uint64_t left = end - off;
      const uint64_t n = left < step + blob ? left : step;
      out.push_back({off, n});
      off += n;
    }
  }
  return out;
}

HostArena::HostArena(ArenaOptions options) : options_(std::move(options)) {
  status_.total = options_.bytes;
  if (options_.bytes == 0) {
    status_.done = true;
    return;
  }
  void* p =
      ::mmap(nullptr, options_.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    fail(ErrorKind::kOutOfMemory, "host expert arena: cannot map {}: {}",
         format_bytes(double(options_.bytes)), std::strerror(errno));
  data_ = static_cast<uint8_t*>(p);
  if (options_.hugepages) ::madvise(data_, options_.bytes, MADV_HUGEPAGE);
  if (options_.numa_node >= 0) {
    std::string err;
    numa_note_ = bind_to_numa_node(data_, options_.bytes, options_.numa_node, &err)
                     ? "bound to NUMA node " + std::to_string(options_.numa_node)
                     : "not bound to NUMA node " + std::to_string(options_.numa_node) + ": " + err;
  }
  if (!options_.pinner) {
    status_.done = true;
    return;
  }
  if (options_.pin_chunk == 0) options_.pin_chunk = 256ull << 20;
  if (options_.background)
    thread_ = std::thread([this] { pin_all(); });
  else
    pin_all();
}

HostArena::~HostArena() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  for (void* c : pinned_chunks_) options_.pinner->unpin(c);
  if (data_) ::munmap(data_, options_.bytes);
}

void HostArena::pin_all() {
  const auto t0 = std::chrono::steady_clock::now();
  uint64_t off = 0;
  std::string error;
  bool failed = false;
  for (const PinRange& r :
       pin_ranges(options_.bytes, options_.pin_chunk, options_.region, options_.blob)) {
    if (stop_.load()) break;
    if (!options_.pinner->pin(data_ + r.offset, r.bytes, &error)) {
      failed = true;
      break;
    }
    off = r.offset + r.bytes;
    pinned_bytes_.store(off);
    PinStatus s;
    {
      std::lock_guard<std::mutex> lock(mu_);
      pinned_chunks_.push_back(data_ + r.offset);
      status_.pinned = off;
      status_.seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      s = status_;
    }
    if (options_.on_progress && off < options_.bytes) options_.on_progress(s);
  }
  PinStatus s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    status_.done = true;
    status_.failed = failed || (off < options_.bytes);
    status_.error = failed ? error : (off < options_.bytes ? "stopped" : "");
    status_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    s = status_;
  }
  cv_.notify_all();
  if (options_.on_progress) options_.on_progress(s);
}

PinStatus HostArena::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

PinStatus HostArena::wait_pinned() const {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return status_.done; });
  return status_;
}

bool HostArena::pinned(const void* ptr, size_t bytes) const {
  const auto* p = static_cast<const uint8_t*>(ptr);
  return p >= data_ && uint64_t(p - data_) + bytes <= pinned_bytes_.load();
}

}  // namespace cs
