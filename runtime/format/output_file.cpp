#include "runtime/format/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/error.h"

namespace cs {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void io_fail(const std::string& what, const std::string& path, int err) {
  fail(ErrorKind::kIo, "{}: {}: {}{}", path, what, std::strerror(err),
       err == ENOSPC ? " (disk full)" : "");
}

}  // namespace

OutputFile::OutputFile(const std::string& dest, bool force, PwriteFn pwrite)
    : dest_(dest), pwrite_(std::move(pwrite)) {
  if (!pwrite_)
    pwrite_ = [](int fd, const void* b, size_t n, off_t o) { return ::pwrite(fd, b, n, o); };
  std::error_code ec;
  if (fs::exists(dest, ec)) {
    if (fs::is_directory(dest, ec))
      fail(ErrorKind::kInvalidArgument, "{}: is a directory, expected an output file path", dest);
    if (!force)
      fail(ErrorKind::kInvalidArgument, "{}: already exists (pass --force to overwrite it)", dest);
  }
  const fs::path p(dest);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::string tmpl = (dir / fmt::format(".{}.tmp-XXXXXX", p.filename().string())).string();
  fd_ = ::mkstemp(tmpl.data());
  if (fd_ < 0) io_fail("cannot create a temporary file in " + dir.string(), dest, errno);
  temp_ = tmpl;
  ::fchmod(fd_, 0644);  // mkstemp makes 0600; a model file is an ordinary readable file
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_.empty()) ::unlink(temp_.c_str());
}

void OutputFile::write_at(uint64_t offset, const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = pwrite_(fd_, p, n, off_t(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      io_fail("write failed", dest_, errno);
    }
    if (w == 0) io_fail("write failed", dest_, ENOSPC);
    p += w;
    n -= size_t(w);
    offset += uint64_t(w);
  }
}

void OutputFile::read_at(uint64_t offset, void* data, size_t n) const {
  uint8_t* p = static_cast<uint8_t*>(data);
  while (n > 0) {
    const ssize_t r = ::pread(fd_, p, n, off_t(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) io_fail("cannot read back the temporary file", dest_, r < 0 ? errno : EIO);
    p += r;
    n -= size_t(r);
    offset += uint64_t(r);
  }
}

void OutputFile::commit(uint64_t size) {
  if (::ftruncate(fd_, off_t(size)) != 0) io_fail("cannot set the file size", dest_, errno);
  if (::fsync(fd_) != 0) io_fail("fsync failed", dest_, errno);
  ::close(fd_);
  fd_ = -1;
  if (::rename(temp_.c_str(), dest_.c_str()) != 0)
    io_fail("cannot rename the temporary file", dest_, errno);
  committed_ = true;
  const fs::path p(dest_);
  const std::string dir = p.has_parent_path() ? p.parent_path().string() : ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace cs
