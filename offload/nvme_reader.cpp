#include "offload/nvme_reader.h"

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "offload/expert_locator.h"

namespace cs {

namespace {
constexpr uint64_t kWakeTag = 0;               // user_data of the eventfd poll
constexpr uint64_t kRegionBytes = 1ull << 30;  // io_uring fixed buffers: at most 1 GiB each
constexpr uint64_t kAlign = 4096;
}  // namespace

struct NvmeReader::Ring {
  io_uring ring{};
  bool ok = false;
  uint64_t wake_buf = 0;  // the eventfd read lands here; lives as long as the ring
  ~Ring() {
    if (ok) io_uring_queue_exit(&ring);
  }
};

struct NvmeReader::Chunk {
  Blob* blob = nullptr;
  uint64_t off0 = 0;  // the whole chunk
  uint32_t len0 = 0;
  uint8_t* dst0 = nullptr;
  uint64_t off = 0;  // what is still to read (after short reads)
  uint32_t len = 0;
  uint8_t* dst = nullptr;
  int attempts = 0;
};

struct NvmeReader::Blob {
  uint64_t ticket = 0;
  BlobRead r;
  std::vector<std::unique_ptr<Chunk>> chunks;
  int pending = 0;  // chunks queued or in flight
  int attempt = 0;  // whole-blob attempts (checksum mismatches)
  bool failed = false;
  bool corrupt = false;
  std::string error;
};

NvmeReader::NvmeReader(std::string path, NvmeOptions options, std::span<uint8_t> buffers)
    : path_(std::move(path)), opt_(std::move(options)), buffers_(buffers) {
  if (opt_.queue_depth <= 0 || opt_.queue_depth > 4096)
    fail(ErrorKind::kInvalidArgument, "io queue depth must be in 1..4096, got {}",
         opt_.queue_depth);
  if (opt_.read_size == 0 || opt_.read_size % kAlign)
    fail(ErrorKind::kInvalidArgument, "io read size must be a positive multiple of 4096, got {}",
         opt_.read_size);
  if (opt_.direct_io) {
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (fd_ < 0 && errno == EINVAL)
      notes_.push_back(path_ + ": the file system does not support O_DIRECT; buffered reads");
    if (fd_ >= 0) {
      direct_ = true;
      struct statx sx {};
      if (::statx(fd_, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
          (sx.stx_mask & STATX_DIOALIGN) &&
          (sx.stx_dio_offset_align > kAlign || sx.stx_dio_mem_align > kAlign ||
           sx.stx_dio_offset_align == 0)) {
        notes_.push_back(fmt::format(
            "{}: direct I/O needs offset alignment {} and memory alignment {} (blobs are 4096-"
            "aligned, or the file system reports no direct I/O); buffered reads",
            path_, sx.stx_dio_offset_align, sx.stx_dio_mem_align));
        ::close(fd_);
        fd_ = -1;
        direct_ = false;
      }
    }
  }
  if (fd_ < 0) fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0)
    fail(errno == ENOENT ? ErrorKind::kNotFound : ErrorKind::kIo, "{}: cannot open: {}", path_,
         std::strerror(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0)
    fail(ErrorKind::kIo, "{}: cannot stat: {}", path_, std::strerror(errno));
  file_size_ = uint64_t(st.st_size);

  ring_ = std::make_unique<Ring>();
  const int rc = io_uring_queue_init(unsigned(opt_.queue_depth + 2), &ring_->ring, 0);
  if (rc < 0) {
    ::close(fd_);
    fail(ErrorKind::kIo, "{}: io_uring_queue_init failed: {}", path_, std::strerror(-rc));
  }
  ring_->ok = true;
  if (opt_.register_buffers && !buffers_.empty()) {
    std::vector<iovec> iov;
    for (uint64_t o = 0; o < buffers_.size(); o += kRegionBytes)
      iov.push_back(
          {buffers_.data() + o, size_t(std::min<uint64_t>(kRegionBytes, buffers_.size() - o))});
    const int r = io_uring_register_buffers(&ring_->ring, iov.data(), unsigned(iov.size()));
    if (r == 0)
      registered_ = true;
    else
      notes_.push_back(fmt::format(
          "{}: io_uring could not register {} MiB of buffers ({}; raise the locked-memory limit, "
          "ulimit -l); plain reads",
          path_, buffers_.size() >> 20, std::strerror(-r)));
  }
  efd_ = ::eventfd(0, EFD_CLOEXEC);
  if (efd_ < 0) fail(ErrorKind::kIo, "eventfd: {}", std::strerror(errno));
  thread_ = std::thread([this] { run(); });
}

NvmeReader::~NvmeReader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake();
  if (thread_.joinable()) thread_.join();
  ring_.reset();
  if (efd_ >= 0) ::close(efd_);
  if (fd_ >= 0) ::close(fd_);
}

void NvmeReader::wake() {
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(efd_, &one, sizeof one);
}

uint64_t NvmeReader::submit(const BlobRead& r) {
  if (r.bytes == 0 || r.bytes % kAlign || r.offset % kAlign ||
      reinterpret_cast<uintptr_t>(r.dst) % kAlign)
    fail(ErrorKind::kInvalidArgument, "{}: read of {} (offset {}, {} bytes) is not 4096-aligned",
         path_, to_string(r.id), r.offset, r.bytes);
  auto b = std::make_unique<Blob>();
  b->r = r;
  for (uint64_t o = 0; o < r.bytes; o += opt_.read_size) {
    auto c = std::make_unique<Chunk>();
    c->blob = b.get();
    c->off0 = r.offset + o;
    c->len0 = uint32_t(std::min<uint64_t>(opt_.read_size, r.bytes - o));
    c->dst0 = static_cast<uint8_t*>(r.dst) + o;
    b->chunks.push_back(std::move(c));
  }
  uint64_t t;
  {
    std::lock_guard<std::mutex> lock(mu_);
    t = b->ticket = ++next_ticket_;
    ++stats_.blobs;
    queue_blob_chunks(b.get());
    blobs_[t] = std::move(b);
  }
  wake();
  return t;
}

void NvmeReader::queue_blob_chunks(Blob* b) {
  for (auto& c : b->chunks) {
    c->off = c->off0;
    c->len = c->len0;
    c->dst = c->dst0;
    c->attempts = 0;
    ready_.push_back(c.get());
  }
  b->pending = int(b->chunks.size());
}

void NvmeReader::run() {
  io_uring* ring = &ring_->ring;
  bool poll_armed = false;
  for (;;) {
    bool stopping;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping = stop_;
      if (stopping) {
        // Abandon queued reads; only wait for those the kernel is writing.
        for (Chunk* c : ready_) {
          c->blob->failed = true;
          c->blob->error = "reader closed";
        }
        ready_.clear();
      }
      while (!stopping && inflight_ < opt_.queue_depth && !ready_.empty()) {
        io_uring_sqe* sqe = io_uring_get_sqe(ring);
        if (!sqe) break;
        Chunk* c = ready_.front();
        ready_.pop_front();
        const uint8_t* base = buffers_.data();
        const uint64_t rel = uint64_t(c->dst - base);
        const bool fixed = registered_ && c->dst >= base &&
                           c->dst + c->len <= base + buffers_.size() &&
                           rel / kRegionBytes == (rel + c->len - 1) / kRegionBytes;
        if (fixed)
          io_uring_prep_read_fixed(sqe, fd_, c->dst, c->len, c->off, int(rel / kRegionBytes));
        else
          io_uring_prep_read(sqe, fd_, c->dst, c->len, c->off);
        io_uring_sqe_set_data64(sqe, reinterpret_cast<uint64_t>(c));
        ++inflight_;
        ++stats_.reads;
      }
    }
    if (stopping && inflight_ == 0) break;
    if (!poll_armed && !stopping) {
      if (io_uring_sqe* sqe = io_uring_get_sqe(ring)) {
        io_uring_prep_read(sqe, efd_, &ring_->wake_buf, sizeof ring_->wake_buf, 0);
        io_uring_sqe_set_data64(sqe, kWakeTag);
        poll_armed = true;
      }
    }
    io_uring_submit(ring);
    io_uring_cqe* cqe = nullptr;
    int rc = io_uring_wait_cqe(ring, &cqe);
    if (rc == -EINTR) continue;
    if (rc < 0) break;  // the ring is unusable; blobs in progress are failed by the destructor
    unsigned head, seen = 0;
    io_uring_for_each_cqe(ring, head, cqe) {
      ++seen;
      const uint64_t tag = io_uring_cqe_get_data64(cqe);
      if (tag == kWakeTag) {
        poll_armed = false;
        continue;
      }
      --inflight_;
      complete(reinterpret_cast<Chunk*>(tag), cqe->res);
    }
    io_uring_cq_advance(ring, seen);
  }
  // Report anything left (only after a ring failure or a close) as failed.
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [t, b] : blobs_) {
    ReadOutcome o{t, b->r.id, false, false,
                  fmt::format("{}: {} was not read: reader closed", path_, to_string(b->r.id))};
    finished_[t] = o;
  }
  blobs_.clear();
  cv_.notify_all();
}

void NvmeReader::complete(Chunk* c, int res) {
  Blob* b = c->blob;
  if (opt_.faults)
    opt_.faults->on_read({b->r.id, c->off, c->len, c->dst, b->attempt + c->attempts, b->r.prefetch},
                         res);
  auto requeue = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    ready_.push_front(c);
  };
  auto give_up = [&](const std::string& why) {
    b->failed = true;
    if (b->error.empty()) b->error = why;
  };
  if (b->failed) {
    // Another chunk of this blob already failed: just let this one drain.
  } else if (res < 0) {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.retries;
    if (++c->attempts <= opt_.retries) {
      ready_.push_front(c);
      return;
    }
    give_up(fmt::format("read of {} bytes at offset {} failed: {}", c->len, c->off,
                        std::strerror(-res)));
  } else if (uint32_t(res) < c->len) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.short_reads;
    }
    const bool aligned = !direct_ || res % int(kAlign) == 0;
    if (res > 0 && aligned) {  // continue where it stopped
      c->off += uint64_t(res);
      c->dst += res;
      c->len -= uint32_t(res);
      requeue();
      return;
    }
    if (++c->attempts <= opt_.retries) {
      c->off = c->off0;
      c->dst = c->dst0;
      c->len = c->len0;
      requeue();
      return;
    }
    give_up(fmt::format("short read: {} of {} bytes at offset {} (file size {})", res, c->len,
                        c->off, file_size_));
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.bytes += uint64_t(res);
  }
  if (--b->pending == 0) finish(b);
}

void NvmeReader::finish(Blob* b) {
  if (!b->failed) {
    const uint64_t got = blob_checksum(b->r.dst, b->r.bytes);
    if (got != b->r.xxh3) {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.checksum_failures;
      if (++b->attempt <= opt_.retries) {
        ++stats_.retries;
        queue_blob_chunks(b);
        return;
      }
      b->failed = true;
      b->corrupt = true;
      b->error = fmt::format("checksum mismatch (xxh3 {:016x}, expected {:016x})", got, b->r.xxh3);
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  ReadOutcome o{b->ticket, b->r.id, !b->failed, b->corrupt, ""};
  if (b->failed) {
    ++stats_.failed_blobs;
    o.error = fmt::format(
        "{}: reading layer {} expert {} (offset {}, {} bytes) failed after {} "
        "attempt(s): {}",
        path_, b->r.id.layer, b->r.id.expert, b->r.offset, b->r.bytes, 1 + opt_.retries, b->error);
  }
  finished_[b->ticket] = std::move(o);
  blobs_.erase(b->ticket);
  cv_.notify_all();
}

ReadOutcome NvmeReader::wait(uint64_t ticket) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return finished_.count(ticket) > 0; });
  ReadOutcome o = std::move(finished_[ticket]);
  finished_.erase(ticket);
  return o;
}

std::optional<ReadOutcome> NvmeReader::try_take(uint64_t ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = finished_.find(ticket);
  if (it == finished_.end()) return std::nullopt;
  ReadOutcome o = std::move(it->second);
  finished_.erase(it);
  return o;
}

std::vector<ReadOutcome> NvmeReader::take_finished() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ReadOutcome> out;
  for (auto& [t, o] : finished_) out.push_back(std::move(o));
  finished_.clear();
  return out;
}

void NvmeReader::wait_idle() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return blobs_.empty(); });
}

NvmeStats NvmeReader::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace cs
