// A file written in place of its destination: data goes to a temporary file beside it, which is
// fsynced and renamed over the destination only by commit(). Until then the destination is
// untouched; a failure (disk full, a crash, an exception) leaves no half-written model behind.
//
// Writes are positional (pwrite) and thread-safe for disjoint ranges.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace cs {

// The system call that writes; tests substitute one that fails (fault injection).
using PwriteFn = std::function<ssize_t(int fd, const void* buf, size_t n, off_t offset)>;

class OutputFile {
 public:
  // Throws cs::Error (kInvalidArgument) when `dest` exists and `force` is false, (kIo) when the
  // temporary file cannot be created.
  OutputFile(const std::string& dest, bool force, PwriteFn pwrite = {});
  ~OutputFile();  // removes the temporary file unless committed
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Writes all of [data, data + n) at `offset`. Throws cs::Error (kIo) naming the destination,
  // with "disk full" for ENOSPC.
  void write_at(uint64_t offset, const void* data, size_t n);
  // Reads back bytes already written (for checksums over written regions).
  void read_at(uint64_t offset, void* data, size_t n) const;
  // Sets the final size, fsyncs, renames over the destination and fsyncs the directory.
  void commit(uint64_t size);

  const std::string& dest() const { return dest_; }
  const std::string& temp_path() const { return temp_; }

 private:
  std::string dest_, temp_;
  int fd_ = -1;
  bool committed_ = false;
  PwriteFn pwrite_;
};

}  // namespace cs
