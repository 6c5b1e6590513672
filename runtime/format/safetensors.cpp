#include "runtime/format/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include "common/error.h"

namespace cs {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

FileDType parse_dtype(const std::string& s, const std::string& where) {
  static const std::pair<const char*, FileDType> kTypes[] = {
      {"F64", FileDType::kF64},   {"F32", FileDType::kF32}, {"F16", FileDType::kF16},
      {"BF16", FileDType::kBF16}, {"I64", FileDType::kI64}, {"I32", FileDType::kI32},
      {"I16", FileDType::kI16},   {"I8", FileDType::kI8},   {"U8", FileDType::kU8},
      {"BOOL", FileDType::kBool}};
  for (const auto& [name, t] : kTypes)
    if (s == name) return t;
  fail(ErrorKind::kUnsupported, "{}: unsupported dtype '{}'", where, s);
}

}  // namespace

std::map<std::string, TensorRef> SafetensorsFile::parse(const uint8_t* data, size_t size,
                                                        const std::string& name) {
  if (size < 8)
    fail(ErrorKind::kBadFile, "{}: truncated safetensors file ({} bytes, expected at least 8)",
         name, size);
  uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);  // little-endian on every platform we build for
  if (header_len > size - 8)
    fail(ErrorKind::kBadFile, "{}: truncated safetensors file: header says {} bytes, file has {}",
         name, header_len, size - 8);
  json header;
  try {
    header = json::parse(data + 8, data + 8 + header_len);
  } catch (const json::exception& e) {
    fail(ErrorKind::kBadFile, "{}: malformed safetensors header: {}", name, e.what());
  }
  if (!header.is_object())
    fail(ErrorKind::kBadFile, "{}: safetensors header is not a JSON object", name);
  const uint8_t* base = data + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  std::map<std::string, TensorRef> out;
  for (const auto& [key, v] : header.items()) {
    if (key == "__metadata__") continue;
    const std::string where = fmt::format("{}: tensor '{}'", name, key);
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") ||
        !v.contains("data_offsets"))
      fail(ErrorKind::kBadFile, "{}: entry must have dtype, shape and data_offsets", where);
    const json& offs = v["data_offsets"];
    const json& shape = v["shape"];
    if (!v["dtype"].is_string() || !shape.is_array() || !offs.is_array() || offs.size() != 2 ||
        !offs[0].is_number_unsigned() || !offs[1].is_number_unsigned())
      fail(ErrorKind::kBadFile, "{}: malformed entry {}", where, v.dump());
    TensorRef t;
    t.name = key;
    t.file = name;
    t.dtype = parse_dtype(v["dtype"].get<std::string>(), where);
    uint64_t numel = 1;
    for (const json& d : shape) {
      if (!d.is_number_unsigned())
        fail(ErrorKind::kBadFile, "{}: bad dimension {}", where, d.dump());
      const uint64_t n = d.get<uint64_t>();
      if (n != 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / n)
        fail(ErrorKind::kBadFile, "{}: shape {} is too large", where, shape.dump());
      numel *= n;
      t.shape.push_back(int64_t(n));
    }
    const uint64_t begin = offs[0].get<uint64_t>(), end = offs[1].get<uint64_t>();
    if (begin > end || end > data_size)
      fail(ErrorKind::kBadFile,
           "{}: data range [{}, {}) lies outside the {}-byte data section (truncated file?)", where,
           begin, end, data_size);
    if (end - begin != numel * file_dtype_size(t.dtype))
      fail(ErrorKind::kBadFile, "{}: {} bytes stored for shape {} of {} ({} expected)", where,
           end - begin, shape.dump(), file_dtype_name(t.dtype), numel * file_dtype_size(t.dtype));
    t.data = base + begin;
    t.bytes = end - begin;
    out.emplace(key, std::move(t));
  }
  return out;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  tensors_ = parse(file_.data(), file_.size(), path);
}

SafetensorsDir::SafetensorsDir(const std::string& dir) : dir_(dir) {
  if (!fs::is_directory(dir)) fail(ErrorKind::kNotFound, "{}: not a directory", dir);
  std::vector<std::string> shards;
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  json weight_map;
  if (fs::exists(index_path)) {
    std::ifstream in(index_path);
    json index;
    try {
      index = json::parse(in);
    } catch (const json::exception& e) {
      fail(ErrorKind::kBadFile, "{}: malformed JSON: {}", index_path.string(), e.what());
    }
    if (!index.contains("weight_map") || !index["weight_map"].is_object())
      fail(ErrorKind::kBadFile, "{}: missing object 'weight_map'", index_path.string());
    weight_map = index["weight_map"];
    std::set<std::string> unique;
    for (const auto& [name, file] : weight_map.items()) {
      if (!file.is_string())
        fail(ErrorKind::kBadFile, "{}: weight_map['{}'] is not a file name", index_path.string(),
             name);
      const std::string f = file.get<std::string>();
      if (f.find('/') != std::string::npos || f == "..")
        fail(ErrorKind::kBadFile, "{}: weight_map['{}'] = '{}' is not a file in the directory",
             index_path.string(), name, f);
      unique.insert(f);
    }
    shards.assign(unique.begin(), unique.end());
  } else {
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".safetensors") shards.push_back(e.path().filename().string());
    std::sort(shards.begin(), shards.end());
  }
  if (shards.empty()) fail(ErrorKind::kNotFound, "{}: no *.safetensors files", dir);
  for (const std::string& s : shards) {
    files_.push_back(std::make_unique<SafetensorsFile>((fs::path(dir) / s).string()));
    for (const auto& [name, t] : files_.back()->tensors()) {
      if (!index_.emplace(name, &t).second)
        fail(ErrorKind::kBadFile, "{}: tensor '{}' appears in more than one shard", dir, name);
    }
  }
  for (const auto& [name, file] : weight_map.items()) {
    auto it = index_.find(name);
    if (it == index_.end())
      fail(ErrorKind::kBadFile,
           "{}: index lists tensor '{}' in {}, but that file does not contain it",
           index_path.string(), name, file.get<std::string>());
  }
}

const TensorRef* SafetensorsDir::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

std::vector<std::string> SafetensorsDir::names() const {
  std::vector<std::string> out;
  for (const auto& [name, t] : index_) out.push_back(name);
  return out;
}

}  // namespace cs
