#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/half.h"
#include "tests/common/fixtures.h"

namespace cs::test {

void write_converted_copy(const std::string& src_dir, const std::string& dst_dir,
                          const std::string& dtype) {
  namespace fs = std::filesystem;
  fs::create_directories(dst_dir);
  for (const auto& e : fs::directory_iterator(src_dir)) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() != ".safetensors") {
      fs::copy_file(e.path(), fs::path(dst_dir) / name);
      continue;
    }
    SafetensorsFile in(e.path().string());
    nlohmann::json header = nlohmann::json::object();
    std::string data;
    for (const auto& [tname, t] : in.tensors()) {
      const size_t begin = data.size();
      if (t.dtype == FileDType::kF32) {
        const float* f = reinterpret_cast<const float*>(t.data);
        for (size_t i = 0; i < t.bytes / 4; ++i) {
          const uint16_t h = dtype == "BF16" ? f32_to_bf16(f[i]) : f32_to_f16(f[i]);
          data.append(reinterpret_cast<const char*>(&h), 2);
        }
        header[tname] = {
            {"dtype", dtype}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
      } else {
        data.append(reinterpret_cast<const char*>(t.data), t.bytes);
        header[tname] = {{"dtype", file_dtype_name(t.dtype)},
                         {"shape", t.shape},
                         {"data_offsets", {begin, data.size()}}};
      }
    }
    std::string h = header.dump();
    h.resize((h.size() + 7) / 8 * 8, ' ');
    const uint64_t n = h.size();
    std::ofstream out(fs::path(dst_dir) / name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << h << data;
  }
}

}  // namespace cs::test
