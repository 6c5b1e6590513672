#include "runtime/format/source_matrix.h"

#include <cstring>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/quant.h"

namespace cs {
namespace {

class MatViewSource final : public SourceMatrix {
 public:
  explicit MatViewSource(const MatView& v) : SourceMatrix(v.rows, v.cols), v_(v) {}
  void row_f32(int64_t r, float* out) const override { dequantize_row(v_, r, out); }
  std::optional<TensorFormat> native() const override {
    if (!v_.quantized()) return std::nullopt;
    return TensorFormat{v_.dtype, v_.group, v_.mins != nullptr};
  }
  void row_native(int64_t r, uint8_t* codes, uint16_t* scales, uint16_t* mins) const override {
    const size_t row_bytes = dtype_data_bytes(v_.dtype, 1, v_.cols);
    const size_t ng = size_t(v_.cols / v_.group);
    std::memcpy(codes, static_cast<const uint8_t*>(v_.data) + size_t(r) * row_bytes, row_bytes);
    std::memcpy(scales, v_.scales + size_t(r) * ng, ng * 2);
    if (v_.mins) std::memcpy(mins, v_.mins + size_t(r) * ng, ng * 2);
  }

 private:
  MatView v_;
};

class PermutedRows final : public SourceMatrix {
 public:
  PermutedRows(std::unique_ptr<SourceMatrix> inner, std::vector<int64_t> perm)
      : SourceMatrix(inner->rows(), inner->cols()),
        inner_(std::move(inner)),
        perm_(std::move(perm)) {}
  void row_f32(int64_t r, float* out) const override { inner_->row_f32(perm_[r], out); }
  std::optional<TensorFormat> native() const override { return inner_->native(); }
  void row_native(int64_t r, uint8_t* codes, uint16_t* scales, uint16_t* mins) const override {
    inner_->row_native(perm_[r], codes, scales, mins);
  }

 private:
  std::unique_ptr<SourceMatrix> inner_;
  std::vector<int64_t> perm_;
};

}  // namespace

void SourceMatrix::row_native(int64_t, uint8_t*, uint16_t*, uint16_t*) const {
  fail(ErrorKind::kInternal, "row_native called on a source without a native format");
}

std::unique_ptr<SourceMatrix> matview_source(const MatView& v) {
  return std::make_unique<MatViewSource>(v);
}

std::unique_ptr<SourceMatrix> permuted_rows(std::unique_ptr<SourceMatrix> inner,
                                            std::vector<int64_t> perm) {
  return std::make_unique<PermutedRows>(std::move(inner), std::move(perm));
}

void encode_rows(const SourceMatrix& src, const TensorFormat& f, int64_t r0, int64_t n,
                 uint8_t* data, uint16_t* scales, uint16_t* mins) {
  const int64_t C = src.cols();
  const size_t row_bytes = dtype_data_bytes(f.dtype, 1, C);
  const bool quant = f.dtype == DType::kQ4 || f.dtype == DType::kQ8;
  const size_t ng = quant ? size_t(C / f.group) : 0;
  const std::optional<TensorFormat> nat = src.native();
  if (nat && *nat == f) {
    for (int64_t i = 0; i < n; ++i)
      src.row_native(r0 + i, data + size_t(i) * row_bytes, scales + size_t(i) * ng,
                     f.asymmetric ? mins + size_t(i) * ng : nullptr);
    return;
  }
  // Stored Q4 codes also fit, exactly, a Q4 target with a group dividing theirs (scales repeat)
  // and an asymmetric target when they are symmetric (m = -8 d is exact in fp16).
  if (nat && nat->dtype == DType::kQ4 && f.dtype == DType::kQ4 && nat->group % f.group == 0 &&
      (f.asymmetric || !nat->asymmetric)) {
    const size_t nn = size_t(C / nat->group), rep = size_t(nat->group / f.group);
    std::vector<uint16_t> s(nn), m(nn);
    for (int64_t i = 0; i < n; ++i) {
      src.row_native(r0 + i, data + size_t(i) * row_bytes, s.data(), m.data());
      for (size_t g = 0; g < ng; ++g) {
        scales[size_t(i) * ng + g] = s[g / rep];
        if (f.asymmetric)
          mins[size_t(i) * ng + g] =
              nat->asymmetric ? m[g / rep] : f32_to_f16(-8.0f * f16_to_f32(s[g / rep]));
      }
    }
    return;
  }
  std::vector<float> row(static_cast<size_t>(C));
  for (int64_t i = 0; i < n; ++i) {
    src.row_f32(r0 + i, row.data());
    uint8_t* d = data + size_t(i) * row_bytes;
    switch (f.dtype) {
      case DType::kF32:
        std::memcpy(d, row.data(), row_bytes);
        break;
      case DType::kF16:
      case DType::kBF16: {
        uint16_t* h = reinterpret_cast<uint16_t*>(d);
        for (int64_t c = 0; c < C; ++c)
          h[c] = f.dtype == DType::kF16 ? f32_to_f16(row[c]) : f32_to_bf16(row[c]);
        break;
      }
      case DType::kQ4:
        quantize_row_q4(row, f.group, f.asymmetric, d, scales + size_t(i) * ng,
                        f.asymmetric ? mins + size_t(i) * ng : nullptr);
        break;
      case DType::kQ8:
        quantize_row_q8(row, f.group, reinterpret_cast<int8_t*>(d), scales + size_t(i) * ng);
        break;
    }
  }
}

}  // namespace cs
