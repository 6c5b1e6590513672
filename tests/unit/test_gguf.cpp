// GGUF: block formats against their definitions, lossless transcoding into our Q4/Q8 layouts,
// split files, and unsupported types and architectures named in the error.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <random>

#include "common/error.h"
#include "kernels/quant.h"
#include "runtime/engine/session.h"
#include "runtime/format/checkpoint.h"
#include "runtime/format/converter.h"
#include "runtime/format/gguf.h"
#include "runtime/format/gguf_export.h"
#include "runtime/format/gguf_quants.h"
#include "runtime/format/source_matrix.h"
#include "runtime/format/synth.h"
#include "tests/common/fixtures.h"

using namespace cs;

namespace {

std::vector<float> random_row(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.1f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string read_all(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

void write_all(const std::string& p, const std::string& s) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << s;
}

// Rewrites a GGUF as `parts` split files (metadata in the first, tensors spread over all).
void split_gguf(const std::string& src, const std::string& stem, int parts) {
  GgufFile in(src);
  const auto& c = in.contents();
  std::vector<std::string> names;
  for (const auto& [n, t] : c.tensors) names.push_back(n);
  for (int p = 0; p < parts; ++p) {
    OutputFile out(fmt::format("{}-{:05}-of-{:05}.gguf", stem, p + 1, parts), true);
    GgufWriter g(out);
    if (p == 0) {
      for (const auto& [k, v] : c.meta.items()) {
        if (v.is_string())
          g.set_str(k, v.get<std::string>());
        else if (v.is_boolean())
          g.set_bool(k, v.get<bool>());
        else if (v.is_number_integer())
          g.set_u32(k, v.get<uint32_t>());
        else if (v.is_number_float())
          g.set_f32(k, v.get<float>());
        else if (v.is_array() && !v.empty() && v[0].is_string())
          g.set_strs(k, v.get<std::vector<std::string>>());
        else if (v.is_array() && !v.empty() && v[0].is_number_integer())
          g.set_i32s(k, v.get<std::vector<int32_t>>());
        else if (v.is_array())
          g.set_f32s(k, v.get<std::vector<float>>());
      }
    }
    g.set_u32("split.count", uint32_t(parts));
    g.set_u32("split.no", uint32_t(p));
    std::vector<std::pair<size_t, const GgufTensor*>> mine;
    for (size_t i = size_t(p); i < names.size(); i += size_t(parts)) {
      const GgufTensor& t = c.tensors.at(names[i]);
      mine.push_back({g.add_tensor(t.name, t.type, t.dims), &t});
    }
    g.layout();
    for (auto [i, t] : mine) g.write(i, 0, t->data, t->bytes);
    g.finish();
  }
}

}  // namespace

TEST_CASE("GGML block formats: quantize then dequantize stays within each type's step") {
  const std::pair<uint32_t, double> kTypes[] = {
      {kGgmlQ4_0, 0.10}, {kGgmlQ4_1, 0.08}, {kGgmlQ8_0, 0.005}, {kGgmlQ4_K, 0.10},
      {kGgmlQ6_K, 0.03}, {kGgmlF16, 1e-3},  {kGgmlBF16, 8e-3},  {kGgmlF32, 0}};
  for (auto [type, tol] : kTypes) {
    const std::vector<float> x = random_row(512, type + 1);
    std::vector<uint8_t> q(gguf_row_bytes(type, 512));
    gguf_quantize_row(type, x.data(), 512, q.data());
    std::vector<float> y(512);
    gguf_dequantize(type, q.data(), 512, y.data());
    float amax = 0, err = 0;
    for (int i = 0; i < 512; ++i) {
      amax = std::max(amax, std::fabs(x[i]));
      err = std::max(err, std::fabs(x[i] - y[i]));
    }
    CAPTURE(ggml_type_name(type));
    CHECK(err <= tol * amax + 1e-7);
  }
}

TEST_CASE("Q4_0, Q4_1, Q8_0 transcode to our layout exactly; Q4_K up to fp16 scale rounding") {
  for (uint32_t type : {kGgmlQ4_0, kGgmlQ4_1, kGgmlQ8_0, kGgmlQ4_K}) {
    const int n = 512;
    const std::vector<float> x = random_row(n, type + 7);
    std::vector<uint8_t> q(gguf_row_bytes(type, n));
    gguf_quantize_row(type, x.data(), n, q.data());
    std::vector<float> want(n), got(n);
    gguf_dequantize(type, q.data(), n, want.data());
    const TensorFormat f = *gguf_native_format(type);
    std::vector<uint8_t> codes(dtype_data_bytes(f.dtype, 1, n));
    std::vector<uint16_t> scales(n / 32), mins(n / 32);
    gguf_transcode_row(type, q.data(), n, codes.data(), scales.data(), mins.data());
    MatView v{f.dtype, codes.data(), scales.data(), f.asymmetric ? mins.data() : nullptr, 1, n, 32};
    dequantize_row(v, 0, got.data());
    CAPTURE(ggml_type_name(type));
    const double tol = type == kGgmlQ4_K ? 2e-3 : 0.0;
    for (int i = 0; i < n; ++i) REQUIRE(std::fabs(got[i] - want[i]) <= tol * 4 + 1e-12);
  }
}

TEST_CASE("GGUF: a split file converts like the single file") {
  test::TempDir tmp;
  auto hf = open_checkpoint(test::fixture("qwen3moe"));
  export_gguf(*hf, tmp.file("one.gguf"), GgufExportTypes{}, false);
  split_gguf(tmp.file("one.gguf"), tmp.file("two"), 3);
  ConvertOptions o;
  convert_to_packed(*open_checkpoint(tmp.file("one.gguf")), tmp.file("one.cst"), o);
  convert_to_packed(*open_checkpoint(tmp.file("two-00001-of-00003.gguf")), tmp.file("two.cst"), o);
  auto be = make_cpu_reference_backend();
  auto a = Model::load(tmp.file("one.cst")), b = Model::load(tmp.file("two.cst"));
  Session sa(*a, *be), sb(*b, *be);
  const std::vector<int32_t> ids = {3, 1, 4, 1, 5};
  CHECK(sa.eval_all(ids) == sb.eval_all(ids));
  CHECK(error_of([&] { GgufModel m(tmp.file("two-00002-of-00003.gguf")); }).find("first part") !=
        std::string::npos);
}

TEST_CASE("GGUF: unsupported tensor types and architectures are named") {
  test::TempDir tmp;
  auto hf = open_checkpoint(test::fixture("qwen3moe"));
  export_gguf(*hf, tmp.file("m.gguf"), GgufExportTypes{}, false);
  const std::string bytes = read_all(tmp.file("m.gguf"));
  {  // blk.0.attn_q.weight becomes Q5_K (type 13)
    std::string b = bytes;
    const std::string name = "blk.0.attn_q.weight";
    const size_t at = b.find(name);
    REQUIRE(at != std::string::npos);
    const size_t type_at = at + name.size() + 4 + 2 * 8;
    uint32_t t = 13;
    b.replace(type_at, 4, std::string(reinterpret_cast<const char*>(&t), 4));
    write_all(tmp.file("q5k.gguf"), b);
    const std::string e = error_of(
        [&] { convert_to_packed(*open_checkpoint(tmp.file("q5k.gguf")), tmp.file("x.cst"), {}); });
    CHECK(e.find("Q5_K") != std::string::npos);
    CHECK(e.find("blk.0.attn_q.weight") != std::string::npos);
    CHECK(!std::filesystem::exists(tmp.file("x.cst")));
  }
  {
    std::string b = bytes;
    const size_t at = b.find("qwen3moe");
    b.replace(at, 8, "gemma3xx");
    write_all(tmp.file("arch.gguf"), b);
    const std::string e = error_of([&] { open_checkpoint(tmp.file("arch.gguf")); });
    CHECK(e.find("'gemma3xx'") != std::string::npos);
    CHECK(e.find("not supported") != std::string::npos);
  }
  {
    write_all(tmp.file("cut.gguf"), bytes.substr(0, bytes.size() - 100));
    CHECK(error_of([&] { GgufFile f(tmp.file("cut.gguf")); }).find("truncated") !=
          std::string::npos);
  }
}

TEST_CASE("stored Q4 codes re-encode exactly into a smaller group and into asymmetric Q4") {
  const int n = 256;
  const std::vector<float> x = random_row(n, 42);
  std::vector<uint8_t> codes(n / 2);
  std::vector<uint16_t> scales(n / 128);
  quantize_row_q4(x, 128, false, codes.data(), scales.data(), nullptr);
  const MatView v{DType::kQ4, codes.data(), scales.data(), nullptr, 1, n, 128};
  std::vector<float> want(n), got(n);
  dequantize_row(v, 0, want.data());
  auto src = matview_source(v);
  for (const char* target : {"q4/32", "q4-asym/64", "q4-asym/128"}) {
    const TensorFormat f = parse_tensor_format(target, "test");
    std::vector<uint8_t> c2(n / 2);
    std::vector<uint16_t> s2(n / f.group), m2(n / f.group);
    encode_rows(*src, f, 0, 1, c2.data(), s2.data(), m2.data());
    const MatView w{DType::kQ4, c2.data(), s2.data(), f.asymmetric ? m2.data() : nullptr,
                    1,          n,         f.group};
    dequantize_row(w, 0, got.data());
    CAPTURE(target);
    CHECK(got == want);
  }
}
