#include <doctest/doctest.h>

#include <cmath>

#include "common/error.h"
#include "common/half.h"
#include "common/units.h"

using namespace cs;

TEST_CASE("parse_bytes understands binary and decimal units") {
  CHECK(parse_bytes("22GiB", "--vram-budget") == 22ull << 30);
  CHECK(parse_bytes("1.5 GB", "x") == 1500000000ull);
  CHECK(parse_bytes("4096", "x") == 4096ull);
  CHECK(parse_bytes("512k", "x") == 512ull * 1024);
  CHECK_THROWS_WITH_AS(parse_bytes("lots", "--vram-budget"), doctest::Contains("--vram-budget"),
                       Error);
  CHECK_THROWS_AS(parse_bytes("12 parsecs", "x"), Error);
  CHECK_THROWS_AS(parse_bytes("-3GB", "x"), Error);
}

TEST_CASE("parse_rate needs a per-second unit") {
  CHECK(parse_rate("25GB/s", "--pcie") == doctest::Approx(25e9));
  CHECK_THROWS_WITH_AS(parse_rate("25GB", "--pcie"), doctest::Contains("--pcie"), Error);
}

TEST_CASE("fp16 and bf16 conversions round to nearest even and keep specials") {
  for (float f :
       {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.1f, 3.14159f}) {
    const float back = f16_to_f32(f32_to_f16(f));
    CHECK(std::fabs(back - f) <= std::fabs(f) * 1e-3f + 1e-7f);
  }
  CHECK(std::isinf(f16_to_f32(f32_to_f16(1e6f))));
  CHECK(std::isnan(f16_to_f32(f32_to_f16(NAN))));
  CHECK(f32_to_f16(1.0f) == 0x3c00);
  CHECK(f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00);  // tie rounds to even (down)
  CHECK(f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02);  // tie rounds to even (up)
  CHECK(bf16_to_f32(f32_to_bf16(1.0f)) == 1.0f);
  CHECK(f32_to_bf16(1.0f + 1.0f / 256) == 0x3f80);  // tie to even
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  // every fp16 bit pattern survives a round trip through fp32
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const uint16_t bits = uint16_t(h);
    const float f = f16_to_f32(bits);
    if (std::isnan(f)) continue;
    REQUIRE(f32_to_f16(f) == bits);
  }
}
