#include "tests/model/gptq_fixture.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "common/half.h"
#include "runtime/format/safetensors.h"
#include "tests/common/safetensors_writer.h"

namespace cs::test {

void make_gptq_checkpoint(const std::string& src_dir, const std::string& dst_dir, int group,
                          bool symmetric) {
  namespace fs = std::filesystem;
  fs::create_directories(dst_dir);
  fs::copy_file(src_dir + "/config.json", dst_dir + "/config.json",
                fs::copy_options::overwrite_existing);
  SafetensorsDir src(src_dir);
  std::map<std::string, RawTensor> out;
  for (const std::string& name : src.names()) {
    const TensorRef& t = *src.find(name);
    const bool linear = t.shape.size() == 2 && name.find("proj.weight") != std::string::npos;
    if (!linear) {
      out[name] = {"F32", t.shape, std::string(reinterpret_cast<const char*>(t.data), t.bytes)};
      continue;
    }
    const int64_t N = t.shape[0], K = t.shape[1], G = K / group;
    const float* w = reinterpret_cast<const float*>(t.data);
    std::vector<int32_t> qweight(size_t(K / 8 * N), 0), qzeros(size_t(G * N / 8), 0);
    std::vector<uint16_t> scales(size_t(G * N));
    for (int64_t n = 0; n < N; ++n)
      for (int64_t g = 0; g < G; ++g) {
        const float* x = w + n * K + g * group;
        float lo = 0, hi = 0;
        for (int i = 0; i < group; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
        int zero = 8;
        float s;
        if (symmetric) {
          s = std::max(-lo, hi) / 7.5f;
        } else {
          s = (hi - lo) / 15.0f;
          zero = std::clamp(int(std::lround(-lo / s)), 1, 15);
        }
        const uint16_t sh = f32_to_f16(s);
        s = f16_to_f32(sh);
        scales[size_t(g * N + n)] = sh;
        qzeros[size_t(g * (N / 8) + n / 8)] |= (zero - 1) << (4 * (n % 8));
        for (int i = 0; i < group; ++i) {
          const int64_t k = g * group + i;
          const int q = std::clamp(int(std::lround(x[i] / s)) + zero, 0, 15);
          qweight[size_t((k / 8) * N + n)] |= q << (4 * (k % 8));
        }
      }
    const std::string base = name.substr(0, name.size() - 7);  // drop ".weight"
    out[base + ".qweight"] = raw("I32", {K / 8, N}, qweight);
    out[base + ".qzeros"] = raw("I32", {G, N / 8}, qzeros);
    out[base + ".scales"] = raw("F16", {G, N}, scales);
  }
  write_safetensors(dst_dir + "/model.safetensors", out);
}

float gptq_weight(const std::string& dir, const std::string& base, int64_t n, int64_t k) {
  SafetensorsDir src(dir);
  const TensorRef& qw = *src.find(base + ".qweight");
  const TensorRef& qz = *src.find(base + ".qzeros");
  const TensorRef& sc = *src.find(base + ".scales");
  const int64_t N = qw.shape[1], K = qw.shape[0] * 8, group = K / sc.shape[0], g = k / group;
  int32_t word, zword;
  uint16_t s;
  std::memcpy(&word, qw.data + 4 * ((k / 8) * N + n), 4);
  std::memcpy(&zword, qz.data + 4 * (g * (N / 8) + n / 8), 4);
  std::memcpy(&s, sc.data + 2 * (g * N + n), 2);
  const int q = (word >> (4 * (k % 8))) & 15, z = ((zword >> (4 * (n % 8))) & 15) + 1;
  return f16_to_f32(s) * float(q - z);
}

}  // namespace cs::test
