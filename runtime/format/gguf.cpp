#include "runtime/format/gguf.h"

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <limits>
#include <regex>

#include "common/error.h"

namespace cs {
namespace {

using nlohmann::json;

enum : uint32_t {
  kU8 = 0,
  kI8,
  kU16,
  kI16,
  kU32,
  kI32,
  kF32,
  kBool,
  kString,
  kArray,
  kU64,
  kI64,
  kF64
};

// A bounds-checked little-endian cursor over the file image.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& name)
      : p_(data), size_(size), name_(name) {}
  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }
  template <typename T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str(const char* what) {
    const uint64_t n = get<uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), size_t(n));
    pos_ += size_t(n);
    return s;
  }
  void need(uint64_t n, const char* what) const {
    if (n > left())
      fail(ErrorKind::kBadFile, "{}: truncated GGUF file: {} needs {} bytes at offset {}, {} left",
           name_, what, n, pos_, left());
  }
  const std::string& name() const { return name_; }

 private:
  const uint8_t* p_;
  size_t size_, pos_ = 0;
  const std::string& name_;
};

// Smallest encoded size of one value of a type, to bound array counts before allocating.
uint64_t min_value_bytes(uint32_t t) {
  switch (t) {
    case kU8:
    case kI8:
    case kBool:
      return 1;
    case kU16:
    case kI16:
      return 2;
    case kU32:
    case kI32:
    case kF32:
      return 4;
    case kString:
    case kU64:
    case kI64:
    case kF64:
      return 8;
    case kArray:
      return 12;
  }
  return 1;
}

json read_value(Cursor& c, uint32_t type, int depth, const std::string& key) {
  switch (type) {
    case kU8:
      return c.get<uint8_t>("a u8 value");
    case kI8:
      return c.get<int8_t>("an i8 value");
    case kU16:
      return c.get<uint16_t>("a u16 value");
    case kI16:
      return c.get<int16_t>("an i16 value");
    case kU32:
      return c.get<uint32_t>("a u32 value");
    case kI32:
      return c.get<int32_t>("an i32 value");
    case kF32:
      return double(c.get<float>("an f32 value"));
    case kBool:
      return c.get<uint8_t>("a bool value") != 0;
    case kString:
      return c.str("a string value");
    case kU64:
      return c.get<uint64_t>("a u64 value");
    case kI64:
      return c.get<int64_t>("an i64 value");
    case kF64:
      return c.get<double>("an f64 value");
    case kArray: {
      if (depth > 4)
        fail(ErrorKind::kBadFile, "{}: metadata '{}' nests arrays too deeply", c.name(), key);
      const uint32_t et = c.get<uint32_t>("an array type");
      const uint64_t n = c.get<uint64_t>("an array length");
      if (et > kF64)
        fail(ErrorKind::kBadFile, "{}: metadata '{}' has unknown array element type {}", c.name(),
             key, et);
      if (n > c.left() / min_value_bytes(et))
        fail(ErrorKind::kBadFile, "{}: metadata '{}' claims {} elements, more than the file holds",
             c.name(), key, n);
      json a = json::array();
      for (uint64_t i = 0; i < n; ++i) a.push_back(read_value(c, et, depth + 1, key));
      return a;
    }
  }
  fail(ErrorKind::kBadFile, "{}: metadata '{}' has unknown value type {}", c.name(), key, type);
}

}  // namespace

std::string ggml_type_name(uint32_t t) {
  static const char* kNames[] = {
      "F32",     "F16",    "Q4_0",    "Q4_1",  "Q4_2",   "Q4_3",  "Q5_0",  "Q5_1",
      "Q8_0",    "Q8_1",   "Q2_K",    "Q3_K",  "Q4_K",   "Q5_K",  "Q6_K",  "Q8_K",
      "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS",
      "I8",      "I16",    "I32",     "I64",   "F64",    "IQ1_M", "BF16"};
  if (t < sizeof(kNames) / sizeof(kNames[0])) return kNames[t];
  return fmt::format("type {}", t);
}

bool ggml_type_supported(uint32_t t) {
  switch (t) {
    case kGgmlF32:
    case kGgmlF16:
    case kGgmlBF16:
    case kGgmlQ4_0:
    case kGgmlQ4_1:
    case kGgmlQ8_0:
    case kGgmlQ4_K:
    case kGgmlQ6_K:
      return true;
  }
  return false;
}

uint32_t ggml_block_weights(uint32_t t) {
  switch (t) {
    case kGgmlF32:
    case kGgmlF16:
    case kGgmlBF16:
      return 1;
    case kGgmlQ4_0:
    case kGgmlQ4_1:
    case kGgmlQ8_0:
      return 32;
    case kGgmlQ4_K:
    case kGgmlQ6_K:
      return 256;
  }
  return 0;
}

uint32_t ggml_block_bytes(uint32_t t) {
  switch (t) {
    case kGgmlF32:
      return 4;
    case kGgmlF16:
    case kGgmlBF16:
      return 2;
    case kGgmlQ4_0:
      return 18;
    case kGgmlQ4_1:
      return 20;
    case kGgmlQ8_0:
      return 34;
    case kGgmlQ4_K:
      return 144;
    case kGgmlQ6_K:
      return 210;
  }
  return 0;
}

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

GgufContents GgufFile::parse(const uint8_t* data, size_t size, const std::string& name) {
  Cursor c(data, size, name);
  if (size < 4 || std::memcmp(data, "GGUF", 4) != 0)
    fail(ErrorKind::kBadFile, "{}: not a GGUF file (bad magic)", name);
  c.get<uint32_t>("the magic");
  GgufContents g;
  g.version = c.get<uint32_t>("the version");
  if (g.version != 2 && g.version != 3)
    fail(ErrorKind::kUnsupported, "{}: GGUF version {} is not supported (expected 2 or 3)", name,
         g.version);
  const uint64_t n_tensors = c.get<uint64_t>("the tensor count");
  const uint64_t n_kv = c.get<uint64_t>("the metadata count");
  if (n_kv > c.left() / 12 || n_tensors > c.left() / 24)
    fail(ErrorKind::kBadFile,
         "{}: GGUF header claims {} keys and {} tensors, more than the file holds", name, n_kv,
         n_tensors);
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.str("a metadata key");
    const uint32_t type = c.get<uint32_t>("a metadata type");
    g.meta[key] = read_value(c, type, 0, key);
  }
  if (g.meta.contains("general.alignment")) {
    const json& a = g.meta["general.alignment"];
    const uint64_t v = a.is_number_unsigned() ? a.get<uint64_t>() : 0;
    if (v == 0 || (v & (v - 1)) != 0 || v > (1u << 20))
      fail(ErrorKind::kBadFile, "{}: general.alignment {} is not a power of two up to 1 MiB", name,
           a.dump());
    g.alignment = v;
  }
  struct Info {
    GgufTensor t;
    uint64_t offset;
  };
  std::vector<Info> infos;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    Info in;
    in.t.name = c.str("a tensor name");
    in.t.file = name;
    const uint32_t nd = c.get<uint32_t>("a tensor rank");
    if (nd == 0 || nd > 4)
      fail(ErrorKind::kBadFile, "{}: tensor '{}' has {} dimensions (expected 1 to 4)", name,
           in.t.name, nd);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t n = c.get<uint64_t>("a tensor dimension");
      if (n == 0 || n > (uint64_t(1) << 40) || numel > (uint64_t(1) << 50) / n)
        fail(ErrorKind::kBadFile, "{}: tensor '{}' has an impossible dimension {}", name, in.t.name,
             n);
      numel *= n;
      in.t.dims.push_back(int64_t(n));
    }
    in.t.type = c.get<uint32_t>("a tensor type");
    in.offset = c.get<uint64_t>("a tensor offset");
    if (ggml_type_supported(in.t.type)) {
      const uint64_t bw = ggml_block_weights(in.t.type);
      if (uint64_t(in.t.dims[0]) % bw != 0)
        fail(ErrorKind::kBadFile,
             "{}: tensor '{}' of type {} has rows of {} weights, not a "
             "multiple of its block of {}",
             name, in.t.name, ggml_type_name(in.t.type), in.t.dims[0], bw);
      in.t.bytes = numel / bw * ggml_block_bytes(in.t.type);
    }
    infos.push_back(std::move(in));
  }
  const uint64_t start = (c.pos() + g.alignment - 1) / g.alignment * g.alignment;
  for (Info& in : infos) {
    if (in.offset % g.alignment != 0)
      fail(ErrorKind::kBadFile, "{}: tensor '{}' data offset {} is not aligned to {}", name,
           in.t.name, in.offset, g.alignment);
    if (ggml_type_supported(in.t.type)) {
      if (start > size || in.offset > size - start || in.t.bytes > size - start - in.offset)
        fail(ErrorKind::kBadFile,
             "{}: tensor '{}' data [{}, +{}) lies past the end of the {}-byte file (truncated?)",
             name, in.t.name, start + in.offset, in.t.bytes, size);
      in.t.data = data + start + in.offset;
    }
    const std::string tname = in.t.name;
    if (!g.tensors.emplace(tname, std::move(in.t)).second)
      fail(ErrorKind::kBadFile, "{}: tensor '{}' appears twice", name, tname);
  }
  return g;
}

GgufFile::GgufFile(const std::string& path) : file_(path) {
  contents_ = parse(file_.data(), file_.size(), path);
}

GgufModel::GgufModel(const std::string& path) : path_(path) {
  files_.push_back(std::make_unique<GgufFile>(path));
  const json& m = meta();
  uint64_t count = 1;
  if (m.contains("split.count") && m["split.count"].is_number_unsigned())
    count = m["split.count"].get<uint64_t>();
  if (count > 1) {
    static const std::regex kPart(R"((.*)-00001-of-(\d{5})\.gguf$)");
    std::smatch sm;
    if (!std::regex_match(path, sm, kPart) || std::stoull(sm[2].str()) != count)
      fail(ErrorKind::kInvalidArgument,
           "{}: split GGUF of {} parts; open it by its first part, NAME-00001-of-{:05}.gguf", path,
           count, count);
    for (uint64_t i = 2; i <= count; ++i) {
      const std::string part = fmt::format("{}-{:05}-of-{:05}.gguf", sm[1].str(), i, count);
      if (!std::filesystem::exists(part))
        fail(ErrorKind::kNotFound, "{}: missing part {} of the split GGUF", part, i);
      files_.push_back(std::make_unique<GgufFile>(part));
    }
  }
  for (const auto& f : files_)
    for (const auto& [name, t] : f->contents().tensors)
      if (!tensors_.emplace(name, &t).second)
        fail(ErrorKind::kBadFile, "{}: tensor '{}' appears in more than one part", path, name);
}

const GgufTensor* GgufModel::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second;
}

}  // namespace cs
