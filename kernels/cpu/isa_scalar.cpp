// The portable level: the generic kernels over plain arrays (what every traits function means,
// spelled out). It runs anywhere and computes exactly what the SIMD levels compute, up to the
// order of fp32 additions.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "common/half.h"
#include "kernels/cpu/simd.h"

namespace cs::cpu::scalar {

struct Isa {
  static constexpr int kBlocks = 1;  // quantization blocks per chunk
  static constexpr int kF = 8;       // floats per float vector
  struct F {
    float v[8];
  };
  struct B {
    int16_t v[32];  // 32 byte lanes: unsigned Q4 codes, |Q8 codes|, or int8 activations
  };
  struct I {
    int32_t v[8];  // lane k: sum of the products of byte lanes 4k .. 4k+3
  };
  using Half = Isa;  // the traits for a block left over after whole chunks

  static F zero() { return F{}; }
  static F fmadd(F a, F b, F c) {
    for (int i = 0; i < 8; ++i) c.v[i] += a.v[i] * b.v[i];
    return c;
  }
  static F mul(F a, F b) {
    for (int i = 0; i < 8; ++i) a.v[i] *= b.v[i];
    return a;
  }
  static F cvt(I x) {
    F f;
    for (int i = 0; i < 8; ++i) f.v[i] = float(x.v[i]);
    return f;
  }
  static float hsum(F a) {
    float s = 0;
    for (float x : a.v) s += x;
    return s;
  }
  static void store(float* p, F a) { std::memcpy(p, a.v, sizeof(a.v)); }
  // 16 bytes of Q4 codes (one block) -> 32 codes in order.
  static B load_q4(const uint8_t* p) {
    B b;
    for (int j = 0; j < 16; ++j) b.v[j] = p[j] & 15, b.v[j + 16] = p[j] >> 4;
    return b;
  }
  static B load_q8(const uint8_t* p) {
    B b;
    for (int j = 0; j < 32; ++j) b.v[j] = int8_t(p[j]);
    return b;
  }
  static B load_act(const int8_t* p) {
    B b;
    for (int j = 0; j < 32; ++j) b.v[j] = p[j];
    return b;
  }
  static I dot_u8(B w, B a) {
    I r{};
    for (int j = 0; j < 32; ++j) r.v[j / 4] += w.v[j] * a.v[j];
    return r;
  }
  static B absb(B w) {
    for (auto& x : w.v) x = int16_t(std::abs(x));
    return w;
  }
  // |w| * sign(a, w): the products w * a, as the SIMD levels form them.
  static I dot_s8(B wabs, B w, B a) {
    for (int j = 0; j < 32; ++j) a.v[j] = int16_t(w.v[j] < 0 ? -a.v[j] : w.v[j] == 0 ? 0 : a.v[j]);
    return dot_u8(wabs, a);
  }
  // The per-lane scale of a chunk whose blocks have scales s0 (and s1).
  static F scales2(float s0, float) {
    F f;
    for (float& x : f.v) x = s0;
    return f;
  }
  static F load_f32(const float* p) {
    F f;
    std::memcpy(f.v, p, sizeof(f.v));
    return f;
  }
  static F load_f16(const uint16_t* p) {
    F f;
    for (int i = 0; i < 8; ++i) f.v[i] = f16_to_f32(p[i]);
    return f;
  }
  static F load_bf16(const uint16_t* p) {
    F f;
    for (int i = 0; i < 8; ++i) f.v[i] = bf16_to_f32(p[i]);
    return f;
  }
};

constexpr CpuIsa kIsaLevel = CpuIsa::kScalar;
#include "kernels/cpu/simd_kernels.inc"

}  // namespace cs::cpu::scalar

namespace cs::cpu {
const CpuKernels& scalar_kernels() {
  return scalar::table();
}
}  // namespace cs::cpu
