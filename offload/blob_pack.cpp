#include "offload/blob_pack.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/half.h"

namespace cs {
namespace {

size_t groups_bytes(const MatLayout& m) {
  return m.group > 0 ? size_t(m.rows) * size_t(m.cols / m.group) * 2 : 0;
}

void copy_mat(const MatView& v, const MatLayout& m, uint8_t* dst) {
  if (v.dtype != m.dtype || v.rows != m.rows || v.cols != m.cols)
    fail(ErrorKind::kInvalidArgument, "expert blob: matrix {}x{} {} does not match layout {}x{} {}",
         v.rows, v.cols, dtype_name(v.dtype), m.rows, m.cols, dtype_name(m.dtype));
  std::memcpy(dst + m.data_offset, v.data, dtype_data_bytes(m.dtype, m.rows, m.cols));
  if (m.dtype == DType::kQ4 || m.dtype == DType::kQ8)
    std::memcpy(dst + m.scales_offset, v.scales, groups_bytes(m));
  if (m.asymmetric) std::memcpy(dst + m.mins_offset, v.mins, groups_bytes(m));
}

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

ExpertLayout layout_of(const ExpertWeights& w) {
  const MatView& g = w.gate;
  for (const MatView* m : {&w.up, &w.down})
    if (m->dtype != g.dtype || m->group != g.group || (m->mins != nullptr) != (g.mins != nullptr))
      fail(ErrorKind::kUnsupported, "expert blob: gate, up and down differ in dtype or group");
  return make_expert_layout(g.dtype, g.cols, g.rows, g.group, g.mins != nullptr);
}

void pack_expert_blob(const ExpertWeights& w, const ExpertLayout& layout, void* dst) {
  uint8_t* d = static_cast<uint8_t*>(dst);
  std::memset(d, 0, layout.bytes);
  copy_mat(w.gate, layout.gate, d);
  copy_mat(w.up, layout.up, d);
  copy_mat(w.down, layout.down, d);
}

void fill_random_q4_blob(const ExpertLayout& layout, uint64_t seed, float scale, void* dst) {
  uint8_t* d = static_cast<uint8_t*>(dst);
  std::memset(d, 0, layout.bytes);
  uint64_t s = seed * 0x2545F4914F6CDD1Dull + 1;
  for (const MatLayout* m : {&layout.gate, &layout.up, &layout.down}) {
    if (m->dtype != DType::kQ4)
      fail(ErrorKind::kInvalidArgument, "random expert blob: layout is {}, expected Q4",
           dtype_name(m->dtype));
    uint8_t* codes = d + m->data_offset;
    const size_t n = dtype_data_bytes(DType::kQ4, m->rows, m->cols);
    for (size_t i = 0; i < n; i += 8) {
      uint64_t r = splitmix(s);
      for (size_t b = 0; b < 8 && i + b < n; ++b, r >>= 8) {
        const uint8_t lo = uint8_t(1 + (r & 0xF) % 15), hi = uint8_t(1 + ((r >> 4) & 0xF) % 15);
        codes[i + b] = uint8_t(lo | (hi << 4));
      }
    }
    auto* scales = reinterpret_cast<uint16_t*>(d + m->scales_offset);
    const size_t groups = size_t(m->rows) * size_t(m->cols / m->group);
    for (size_t g = 0; g < groups; ++g)
      scales[g] = f32_to_f16(scale / 8.0f * (0.5f + float(splitmix(s) >> 40) / float(1 << 24)));
    if (m->asymmetric) {
      auto* mins = reinterpret_cast<uint16_t*>(d + m->mins_offset);
      // value = d * q + m with m = -8 d keeps the codes zero-mean.
      for (size_t g = 0; g < groups; ++g) mins[g] = f32_to_f16(-8.0f * f16_to_f32(scales[g]));
    }
  }
}

ExpertLocator write_blob_file(const std::string& path, int n_layers, int n_experts,
                              const std::vector<ExpertLayout>& layouts,
                              const std::function<void(int, int, void*)>& make,
                              uint64_t first_offset) {
  if (layouts.size() != size_t(n_layers))
    fail(ErrorKind::kInvalidArgument, "{}: {} layouts for {} layers", path, layouts.size(),
         n_layers);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(ErrorKind::kIo, "{}: cannot create: {}", path, std::strerror(errno));
  ExpertLocator loc(path, n_layers, n_experts);
  uint64_t off = (first_offset + kBlobAlign - 1) / kBlobAlign * kBlobAlign;
  size_t max_bytes = 0;
  for (const ExpertLayout& l : layouts) max_bytes = std::max(max_bytes, l.bytes);
  // Blobs are made by a few threads at a time (random INT4 experts are slow to make one by one)
  // and written in order.
  std::vector<std::pair<int, int>> todo;
  for (int l = 0; l < n_layers; ++l)
    if (layouts[size_t(l)].bytes)
      for (int e = 0; e < n_experts; ++e) todo.push_back({l, e});
  const size_t threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 16);
  std::vector<std::unique_ptr<void, decltype(&std::free)>> bufs;
  for (size_t t = 0; t < std::min(threads, std::max<size_t>(todo.size(), 1)); ++t)
    bufs.emplace_back(std::aligned_alloc(kBlobAlign, max_bytes + kBlobAlign), &std::free);
  std::exception_ptr error;
  std::mutex error_mu;
  for (size_t first = 0; first < todo.size(); first += bufs.size()) {
    const size_t n = std::min(bufs.size(), todo.size() - first);
    std::vector<std::thread> ts;
    for (size_t t = 0; t < n; ++t)
      ts.emplace_back([&, t] {
        try {
          make(todo[first + t].first, todo[first + t].second, bufs[t].get());
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mu);
          error = std::current_exception();
        }
      });
    for (auto& th : ts) th.join();
    if (error) {
      ::close(fd);
      std::rethrow_exception(error);
    }
    for (size_t t = 0; t < n; ++t) {
      const auto [l, e] = todo[first + t];
      const ExpertLayout& lay = layouts[size_t(l)];
      ExpertBlobLocation& b = loc.at(l, e);
      b.offset = off;
      b.bytes = lay.bytes;
      b.layout = lay;
      b.xxh3 = blob_checksum(bufs[t].get(), lay.bytes);
      const char* p = static_cast<const char*>(bufs[t].get());
      for (size_t done = 0; done < lay.bytes;) {
        const ssize_t w = ::pwrite(fd, p + done, lay.bytes - done, off_t(off + done));
        if (w <= 0) {
          const int err = errno;
          ::close(fd);
          fail(ErrorKind::kIo, "{}: write at offset {} failed: {}", path, off + done,
               std::strerror(err));
        }
        done += size_t(w);
      }
      off += lay.bytes;
    }
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0)
    fail(ErrorKind::kIo, "{}: cannot flush: {}", path, std::strerror(errno));
  return loc;
}

}  // namespace cs
