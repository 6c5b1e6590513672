#include "tests/common/safetensors_writer.h"

#include <nlohmann/json.hpp>

#include <fstream>

namespace cs::test {

std::string safetensors_image(const std::map<std::string, RawTensor>& tensors) {
  nlohmann::json h = nlohmann::json::object();
  uint64_t off = 0;
  std::string data;
  for (const auto& [name, t] : tensors) {
    h[name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.bytes.size()}}};
    off += t.bytes.size();
    data += t.bytes;
  }
  std::string header = h.dump();
  header.resize((header.size() + 7) / 8 * 8, ' ');
  const uint64_t n = header.size();
  return std::string(reinterpret_cast<const char*>(&n), 8) + header + data;
}

void write_safetensors(const std::string& path, const std::map<std::string, RawTensor>& tensors) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << safetensors_image(tensors);
}

}  // namespace cs::test
