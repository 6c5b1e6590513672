#include "runtime/format/gptq_source.h"

#include <cstring>

#include "common/error.h"
#include "common/half.h"

namespace cs {
namespace {

class GptqSource final : public SourceMatrix {
 public:
  GptqSource(int64_t N, int64_t K, int64_t group, const uint8_t* qweight, const uint8_t* qzeros,
             const uint8_t* scales)
      : SourceMatrix(N, K), group_(group), qw_(qweight), qz_(qzeros), sc_(scales) {
    const int64_t G = K / group;
    symmetric_ = true;
    for (int64_t g = 0; g < G && symmetric_; ++g)
      for (int64_t n = 0; n < N && symmetric_; ++n) symmetric_ = zero(g, n) == 8;
    for (int g : {128, 64, 32})
      if (group % g == 0 && K % 32 == 0) {
        native_group_ = g;
        break;
      }
  }

  void row_f32(int64_t n, float* out) const override {
    for (int64_t k = 0; k < cols(); ++k) {
      const int64_t g = k / group_;
      out[k] = f16_to_f32(scale(g, n)) * float(code(k, n) - zero(g, n));
    }
  }
  std::optional<TensorFormat> native() const override {
    if (!native_group_) return std::nullopt;
    return TensorFormat{DType::kQ4, native_group_, !symmetric_};
  }
  void row_native(int64_t n, uint8_t* codes, uint16_t* scales, uint16_t* mins) const override {
    const int64_t K = cols();
    for (int64_t b = 0; b < K / 32; ++b)
      for (int j = 0; j < 16; ++j)
        codes[b * 16 + j] = uint8_t(code(b * 32 + j, n) | (code(b * 32 + j + 16, n) << 4));
    for (int64_t i = 0; i < K / native_group_; ++i) {
      const int64_t g = i * native_group_ / group_;
      scales[i] = scale(g, n);
      if (!symmetric_) mins[i] = f32_to_f16(-f16_to_f32(scale(g, n)) * float(zero(g, n)));
    }
  }

 private:
  int code(int64_t k, int64_t n) const {
    return int((load32(qw_, (k / 8) * rows() + n) >> (4 * (k % 8))) & 15u);
  }
  int zero(int64_t g, int64_t n) const {
    return int((load32(qz_, g * (rows() / 8) + n / 8) >> (4 * (n % 8))) & 15u) + 1;
  }
  uint16_t scale(int64_t g, int64_t n) const {
    uint16_t s;
    std::memcpy(&s, sc_ + 2 * size_t(g * rows() + n), 2);
    return s;
  }
  static uint32_t load32(const uint8_t* p, int64_t i) {
    uint32_t v;
    std::memcpy(&v, p + 4 * size_t(i), 4);
    return v;
  }

  int64_t group_;
  const uint8_t *qw_, *qz_, *sc_;
  bool symmetric_ = true;
  int native_group_ = 0;
};

}  // namespace

std::unique_ptr<SourceMatrix> gptq_source(const std::string& name, const TensorRef& qweight,
                                          const TensorRef& qzeros, const TensorRef& scales,
                                          const TensorRef* g_idx) {
  auto bad = [&](const std::string& what) {
    fail(ErrorKind::kBadFile, "{}: GPTQ layer '{}': {}", qweight.file, name, what);
  };
  if (qweight.shape.size() != 2 || qzeros.shape.size() != 2 || scales.shape.size() != 2)
    bad("qweight, qzeros and scales must be 2-D");
  if (qweight.dtype != FileDType::kI32 || qzeros.dtype != FileDType::kI32)
    bad("qweight and qzeros must be I32");
  if (scales.dtype != FileDType::kF16) bad("scales must be F16");
  const int64_t K = qweight.shape[0] * 8, N = qweight.shape[1], G = scales.shape[0];
  if (scales.shape[1] != N || qzeros.shape[0] != G || qzeros.shape[1] * 8 != N || G <= 0 ||
      K % G != 0)
    bad(fmt::format("inconsistent shapes: qweight {}, qzeros {}, scales {}", qweight.shape_str(),
                    qzeros.shape_str(), scales.shape_str()));
  const int64_t group = K / G;
  if (g_idx) {
    if (g_idx->dtype != FileDType::kI32 || g_idx->numel() != K) bad("g_idx must be I32 [K]");
    for (int64_t k = 0; k < K; ++k) {
      int32_t g;
      std::memcpy(&g, g_idx->data + 4 * k, 4);
      if (g != k / group)
        fail(ErrorKind::kUnsupported,
             "{}: GPTQ layer '{}' uses act-order (desc_act true, g_idx[{}] = {}): not supported",
             qweight.file, name, k, g);
    }
  }
  return std::make_unique<GptqSource>(N, K, group, qweight.data, qzeros.data, scales.data);
}

}  // namespace cs
