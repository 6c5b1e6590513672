// Writes safetensors files for tests (GPTQ fixtures, fuzz seeds): tensors given as raw bytes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cs::test {

struct RawTensor {
  std::string dtype;  // "F32", "F16", "I32", ...
  std::vector<int64_t> shape;
  std::string bytes;
};

// The file image (8-byte header length, JSON header, data).
std::string safetensors_image(const std::map<std::string, RawTensor>& tensors);
void write_safetensors(const std::string& path, const std::map<std::string, RawTensor>& tensors);

template <typename T>
RawTensor raw(const std::string& dtype, std::vector<int64_t> shape, const std::vector<T>& v) {
  return {dtype, std::move(shape),
          std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T))};
}

}  // namespace cs::test
