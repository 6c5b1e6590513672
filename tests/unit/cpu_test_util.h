// Helpers for the fast CPU kernel tests: random weights in every dtype, as standalone matrices
// and as expert blobs in the packed layout (kernels/expert_layout.h), plus the levels to test.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "common/half.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/simd.h"
#include "kernels/expert_layout.h"
#include "kernels/quant.h"

namespace cs::test {

// Every instruction-set level this machine runs, lowest first (scalar is always there).
inline std::vector<CpuIsa> supported_isas() {
  std::vector<CpuIsa> out;
  for (int i = 0; i < kCpuIsaCount; ++i)
    if (cpu_isa_supported(CpuIsa(i))) out.push_back(CpuIsa(i));
  return out;
}

const cpu::CpuKernels& avx512_emulation_kernels();  // avx512_emulation.cpp

// The kernel tables to test: every supported level, plus the AVX-512 layout emulated in C++.
struct KernelLevel {
  std::string name;
  const cpu::CpuKernels* k;
};
inline std::vector<KernelLevel> kernel_levels() {
  std::vector<KernelLevel> out;
  for (CpuIsa isa : supported_isas()) out.push_back({cpu_isa_name(isa), &cpu::kernels_for(isa)});
  out.push_back({"avx512-emulated", &avx512_emulation_kernels()});
  return out;
}

struct WeightFormat {
  DType dtype = DType::kQ4;
  int group = 32;
  bool asymmetric = false;
};

inline std::vector<float> randn(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Writes row-major floats w [N][C] into a matrix of format f at data/scales/mins.
inline void encode_rows(const WeightFormat& f, std::span<const float> w, int64_t N, int64_t C,
                        void* data, uint16_t* scales, uint16_t* mins) {
  for (int64_t r = 0; r < N; ++r) {
    std::span<const float> row = w.subspan(size_t(r * C), size_t(C));
    const int64_t g = f.group ? C / f.group : 0;
    switch (f.dtype) {
      case DType::kQ4:
        quantize_row_q4(row, f.group, f.asymmetric, static_cast<uint8_t*>(data) + r * C / 2,
                        scales + r * g, f.asymmetric ? mins + r * g : nullptr);
        break;
      case DType::kQ8:
        quantize_row_q8(row, f.group, static_cast<int8_t*>(data) + r * C, scales + r * g);
        break;
      case DType::kF32:
        std::memcpy(static_cast<float*>(data) + r * C, row.data(), size_t(C) * 4);
        break;
      case DType::kF16:
        for (int64_t c = 0; c < C; ++c)
          static_cast<uint16_t*>(data)[r * C + c] = f32_to_f16(row[c]);
        break;
      case DType::kBF16:
        for (int64_t c = 0; c < C; ++c)
          static_cast<uint16_t*>(data)[r * C + c] = f32_to_bf16(row[c]);
        break;
    }
  }
}

// A standalone matrix that owns its memory.
struct OwnedMat {
  std::vector<uint8_t> data;
  std::vector<uint16_t> scales, mins;
  MatView view;
};

inline OwnedMat make_mat(const WeightFormat& f, int64_t N, int64_t C, std::mt19937& rng,
                         float scale = 1.0f) {
  OwnedMat m;
  const std::vector<float> w = randn(size_t(N * C), rng, scale);
  m.data.resize(dtype_data_bytes(f.dtype, N, C) + 64);
  const bool quant = f.dtype == DType::kQ4 || f.dtype == DType::kQ8;
  if (quant) {
    m.scales.resize(size_t(N * C / f.group));
    if (f.asymmetric) m.mins.resize(m.scales.size());
  }
  encode_rows(f, w, N, C, m.data.data(), m.scales.data(), m.mins.data());
  m.view.dtype = f.dtype;
  m.view.data = m.data.data();
  m.view.scales = quant ? m.scales.data() : nullptr;
  m.view.mins = f.asymmetric ? m.mins.data() : nullptr;
  m.view.rows = N;
  m.view.cols = C;
  m.view.group = quant ? f.group : 0;
  return m;
}

// One expert blob in the packed layout, owning its (4 KiB-aligned) memory.
struct OwnedExpert {
  std::unique_ptr<uint8_t, void (*)(void*)> blob{nullptr, std::free};
  ExpertWeights w;
};

inline OwnedExpert make_expert(const WeightFormat& f, int64_t H, int64_t I, std::mt19937& rng) {
  const ExpertLayout L = make_expert_layout(f.dtype, H, I, f.group, f.asymmetric);
  OwnedExpert e;
  e.blob.reset(static_cast<uint8_t*>(std::aligned_alloc(kBlobAlign, L.bytes)));
  std::memset(e.blob.get(), 0, L.bytes);
  uint8_t* b = e.blob.get();
  const MatLayout* mats[3] = {&L.gate, &L.up, &L.down};
  for (const MatLayout* m : mats) {
    // Scaled so every output is of order one: x ~ N(0, 1) in, y ~ N(0, 1) out.
    const std::vector<float> w =
        randn(size_t(m->rows * m->cols), rng, 1.0f / std::sqrt(float(m->cols)));
    encode_rows(f, w, m->rows, m->cols, b + m->data_offset,
                reinterpret_cast<uint16_t*>(b + m->scales_offset),
                reinterpret_cast<uint16_t*>(b + m->mins_offset));
  }
  e.w = expert_views(L, b);
  return e;
}

}  // namespace cs::test
