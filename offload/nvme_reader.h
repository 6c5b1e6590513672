// The NVMe tier: reads expert blobs from the packed file into host memory with io_uring.
//
// - O_DIRECT (no page cache: the page cache is the known bottleneck for models larger than RAM)
//   when the file system supports it and its alignment (statx STATX_DIOALIGN) is at most 4 KiB;
//   otherwise buffered reads, with a note saying why.
// - Each blob is split into reads of `read_size`; up to `queue_depth` reads are in flight,
//   submitted in batches by one I/O thread.
// - Destination memory is registered with io_uring (fixed buffers, <= 1 GiB each) when the
//   locked-memory limit allows; otherwise plain reads, with a note.
// - Short reads continue where they stopped; failed reads are retried; when a blob has arrived
//   its XXH3 checksum is verified, and a mismatch re-reads the blob. After `retries` further
//   attempts the blob fails with a message naming the file, offset, layer and expert. A failed
//   blob's bytes must not be used: the caller gets only the failure.
//
// Thread-safety: submit/wait/try_take/take_finished from one thread; the reader runs its own
// I/O thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "cache/expert_id.h"
#include "offload/fault_injection.h"

namespace cs {

struct NvmeOptions {
  int queue_depth = 32;             // reads in flight
  uint32_t read_size = 512u << 10;  // bytes per read (a multiple of 4096)
  bool direct_io = true;            // O_DIRECT when the file system allows it
  int retries = 3;                  // further attempts after a failed, short or corrupt read
  bool register_buffers = true;     // io_uring fixed buffers over the destination memory
  std::shared_ptr<ReadFaultInjector> faults;  // tests
};

struct BlobRead {
  ExpertId id;
  uint64_t offset = 0;    // in the file, 4096-aligned
  uint64_t bytes = 0;     // a multiple of 4096
  uint64_t xxh3 = 0;      // expected checksum of the whole blob
  void* dst = nullptr;    // 4096-aligned, `bytes` long
  bool prefetch = false;  // informational (fault injection, statistics)
};

struct ReadOutcome {
  uint64_t ticket = 0;
  ExpertId id;
  bool ok = false;
  bool corrupt = false;  // failed its checksum (otherwise an I/O error or a short file)
  std::string error;     // names file, offset, layer and expert
};

struct NvmeStats {
  uint64_t blobs = 0, reads = 0, bytes = 0;
  uint64_t retries = 0, short_reads = 0, checksum_failures = 0, failed_blobs = 0;
};

class NvmeReader {
 public:
  // Opens `path`. `buffers` is the memory reads land in (registered when possible); reads to
  // other memory work too, unregistered. Throws cs::Error (kNotFound, kIo) naming the path.
  NvmeReader(std::string path, NvmeOptions options, std::span<uint8_t> buffers = {});
  ~NvmeReader();
  NvmeReader(const NvmeReader&) = delete;
  NvmeReader& operator=(const NvmeReader&) = delete;

  uint64_t submit(const BlobRead& r);
  ReadOutcome wait(uint64_t ticket);                     // blocks; the outcome is taken
  std::optional<ReadOutcome> try_take(uint64_t ticket);  // non-blocking
  std::vector<ReadOutcome> take_finished();              // every finished, untaken outcome
  void wait_idle();                                      // until nothing is queued or in flight

  const std::string& path() const { return path_; }
  uint64_t file_size() const { return file_size_; }
  bool direct() const { return direct_; }
  bool registered() const { return registered_; }
  const std::vector<std::string>& notes() const { return notes_; }  // why not direct/registered
  NvmeStats stats() const;

 private:
  struct Blob;
  struct Chunk;
  struct Ring;
  void run();
  void queue_blob_chunks(Blob* b);  // REQUIRES: mu_ held
  void complete(Chunk* c, int res);
  void finish(Blob* b);
  void wake();

  std::string path_;
  NvmeOptions opt_;
  int fd_ = -1, efd_ = -1;
  uint64_t file_size_ = 0;
  bool direct_ = false, registered_ = false;
  std::vector<std::string> notes_;
  std::span<uint8_t> buffers_;
  std::unique_ptr<Ring> ring_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Chunk*> ready_;                         // GUARDED_BY(mu_)
  std::map<uint64_t, std::unique_ptr<Blob>> blobs_;  // GUARDED_BY(mu_) in progress
  std::map<uint64_t, ReadOutcome> finished_;         // GUARDED_BY(mu_)
  uint64_t next_ticket_ = 0;                         // GUARDED_BY(mu_)
  NvmeStats stats_;                                  // GUARDED_BY(mu_)
  bool stop_ = false;                                // GUARDED_BY(mu_)
  int inflight_ = 0;                                 // I/O thread only
  std::thread thread_;
};

}  // namespace cs
