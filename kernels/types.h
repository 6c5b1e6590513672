// Data types and weight views shared by every backend.
//
// Dimension letters used across kernels/: T = tokens in a batch, H = hidden size,
// I = expert intermediate size, E = experts in a layer, K = experts routed per token,
// D = head dimension, Q/KV = query/key-value heads, N/C = output/input features of a matrix.
//
// A MatView describes a weight matrix W [N rows][C cols] (PyTorch's [out, in]); y = W x.
// Pointers in a view are valid on the backend the view was made for (host memory for the CPU
// backend, device memory for CUDA). Views never own memory.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cs {

enum class DType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kQ8,  // int8 group-wise: w = d * q, one fp16 scale d per `group` weights along C
  kQ4,  // int4 group-wise: w = d * (q - 8) (symmetric) or w = d * q + m (asymmetric); see quant.h
};

const char* dtype_name(DType t);

struct MatView {
  DType dtype = DType::kF32;
  const void* data = nullptr;  // F32/F16/BF16: [N][C] elements; Q8: [N][C] int8; Q4: [N][C/2] bytes
  const uint16_t* scales = nullptr;  // Q8/Q4: fp16 [N][C/group]
  const uint16_t* mins = nullptr;    // Q4 asymmetric: fp16 [N][C/group]; null means symmetric
  int64_t rows = 0;                  // N
  int64_t cols = 0;                  // C
  int32_t group = 0;                 // Q8/Q4: weights per scale along C (32, 64 or 128)

  bool empty() const { return data == nullptr; }
  bool quantized() const { return dtype == DType::kQ8 || dtype == DType::kQ4; }
};

// Bytes of the `data` array of an N x C matrix of this type (scales and mins not included).
size_t dtype_data_bytes(DType t, int64_t rows, int64_t cols);

// One expert's SwiGLU feed-forward: down(silu(gate x) * up x).
struct ExpertWeights {
  MatView gate;  // [I][H]
  MatView up;    // [I][H]
  MatView down;  // [H][I]
  bool present() const { return !gate.empty(); }
};

}  // namespace cs
