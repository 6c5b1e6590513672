// Helpers of the GPU tests: one CUDA backend per process, random inputs drawn fresh each run
// (the seed is printed), device copies, outputs poisoned before each op, error measures.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "common/half.h"
#include "kernels/backend.h"
#include "kernels/cpu/ref_ops.h"
#include "kernels/cuda_backend.h"
#include "kernels/quant.h"

namespace cs::gputest {

// The backend under test: synchronizes after every op, so a fault names its op.
inline Backend& gpu() {
  static std::unique_ptr<Backend> b = [] {
    CudaBackendOptions o;
    o.check_each_op = true;
    return make_cuda_backend(o);
  }();
  return *b;
}

inline std::mt19937_64& rng() {
  static std::mt19937_64 g = [] {
    const uint64_t seed = std::random_device{}();
    MESSAGE("random seed " << seed);
    return std::mt19937_64(seed);
  }();
  return g;
}
inline float uniform(float lo, float hi) {
  return std::uniform_real_distribution<float>(lo, hi)(rng());
}
inline int randint(int lo, int hi) {  // [lo, hi]
  return std::uniform_int_distribution<int>(lo, hi)(rng());
}
inline std::vector<float> randvec(size_t n, float lo = -1, float hi = 1) {
  std::vector<float> v(n);
  for (float& x : v) x = uniform(lo, hi);
  return v;
}

template <typename T>
Buffer to_gpu(const std::vector<T>& v) {
  Buffer b = gpu().alloc(v.size() * sizeof(T));
  gpu().upload(b.get(), v.data(), v.size() * sizeof(T));
  return b;
}
template <typename T>
std::vector<T> from_gpu(const void* p, size_t n) {
  std::vector<T> v(n);
  gpu().download(v.data(), p, n * sizeof(T));
  return v;
}
// A device buffer of `bytes` filled with 0xff: NaN as floats, -1 as ints.
inline Buffer poisoned(size_t bytes) {
  std::vector<uint8_t> p(bytes, 0xff);
  return to_gpu(p);
}
inline void poison(void* dev, size_t bytes) {
  std::vector<uint8_t> p(bytes, 0xff);
  gpu().upload(dev, p.data(), bytes);
}

// max |got - want| / max(|want|, floor); infinite when got has a NaN or Inf. A floor suits results
// that may all cancel to near zero, where only an absolute error is meaningful.
inline double rel_err(const std::vector<float>& got, const std::vector<float>& want,
                      double floor = 0) {
  REQUIRE(got.size() == want.size());
  double num = 0, den = floor;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num = std::max(num, double(std::fabs(got[i] - want[i])));
    den = std::max(den, double(std::fabs(want[i])));
  }
  return den > 0 ? num / den : num;
}

// A weight matrix with host and device copies of the same bytes.
struct Mat {
  MatView host, dev;
  std::vector<std::vector<uint8_t>> mem;
  std::vector<Buffer> dmem;
};

inline Mat make_mat(DType dt, int64_t rows, int64_t cols, float scale = 1.0f, int group = 32,
                    bool asym = false) {
  Mat m;
  MatView& v = m.host;
  v.dtype = dt;
  v.rows = rows;
  v.cols = cols;
  const bool quant = dt == DType::kQ4 || dt == DType::kQ8;
  if (quant) v.group = group;
  m.mem.emplace_back(std::max<size_t>(dtype_data_bytes(dt, rows, cols), 1));
  const size_t groups = quant ? size_t(rows) * size_t(cols / group) : 0;
  if (quant) m.mem.emplace_back(groups * 2);
  if (quant && asym && dt == DType::kQ4) m.mem.emplace_back(groups * 2);
  uint8_t* data = m.mem[0].data();
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<float> f = randvec(size_t(cols), -scale, scale);
    switch (dt) {
      case DType::kF32:
        std::memcpy(data + size_t(r) * cols * 4, f.data(), size_t(cols) * 4);
        break;
      case DType::kF16:
      case DType::kBF16:
        for (int64_t c = 0; c < cols; ++c)
          reinterpret_cast<uint16_t*>(data)[size_t(r) * cols + c] =
              dt == DType::kF16 ? f32_to_f16(f[c]) : f32_to_bf16(f[c]);
        break;
      case DType::kQ8:
        quantize_row_q8(f, group, reinterpret_cast<int8_t*>(data) + size_t(r) * cols,
                        reinterpret_cast<uint16_t*>(m.mem[1].data()) + size_t(r) * (cols / group));
        break;
      case DType::kQ4:
        quantize_row_q4(f, group, m.mem.size() > 2, data + size_t(r) * cols / 2,
                        reinterpret_cast<uint16_t*>(m.mem[1].data()) + size_t(r) * (cols / group),
                        m.mem.size() > 2 ? reinterpret_cast<uint16_t*>(m.mem[2].data()) +
                                               size_t(r) * (cols / group)
                                         : nullptr);
        break;
    }
  }
  v.data = data;
  if (quant) v.scales = reinterpret_cast<const uint16_t*>(m.mem[1].data());
  if (m.mem.size() > 2) v.mins = reinterpret_cast<const uint16_t*>(m.mem[2].data());
  m.dev = v;
  for (size_t i = 0; i < m.mem.size(); ++i) m.dmem.push_back(to_gpu(m.mem[i]));
  m.dev.data = m.dmem[0].get();
  if (quant) m.dev.scales = m.dmem[1].as<const uint16_t>();
  if (m.mem.size() > 2) m.dev.mins = m.dmem[2].as<const uint16_t>();
  return m;
}

}  // namespace cs::gputest
