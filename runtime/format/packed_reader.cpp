#include "runtime/format/packed_reader.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <set>

#include "common/error.h"
#include "runtime/model/weight_id.h"

namespace cs {
namespace {

using nlohmann::json;

// Field access that names the file and the field on any mismatch.
struct Fields {
  const std::string& file;

  [[noreturn]] void bad(const std::string& where, const std::string& what) const {
    fail(ErrorKind::kBadFile, "{}: header field '{}' {}", file, where, what);
  }
  const json& at(const json& j, const char* key, const std::string& where) const {
    if (!j.is_object()) bad(where, "must be an object");
    auto it = j.find(key);
    if (it == j.end()) bad(where + "." + key, "is missing");
    return *it;
  }
  uint64_t u64(const json& j, const char* key, const std::string& where) const {
    const json& v = at(j, key, where);
    if (!v.is_number_unsigned()) bad(where + "." + key, "must be a non-negative integer");
    return v.get<uint64_t>();
  }
  int64_t dim(const json& j, const char* key, const std::string& where) const {
    const uint64_t v = u64(j, key, where);
    if (v == 0 || v > (uint64_t(1) << 31))
      bad(where + "." + key, fmt::format("= {} is not a usable size (1 .. 2^31)", v));
    return int64_t(v);
  }
  std::string str(const json& j, const char* key, const std::string& where) const {
    const json& v = at(j, key, where);
    if (!v.is_string()) bad(where + "." + key, "must be a string");
    return v.get<std::string>();
  }
  uint64_t hex(const json& v, const std::string& where) const {
    if (!v.is_string() || v.get_ref<const std::string&>().size() != 16)
      bad(where, "must be a 16-digit hex checksum");
    const std::string& s = v.get_ref<const std::string&>();
    uint64_t h = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + 16, h, 16);
    if (ec != std::errc() || p != s.data() + 16) bad(where, "must be a 16-digit hex checksum");
    return h;
  }
  TensorFormat format(const json& j, const std::string& where) const {
    const std::string s = str(j, "format", where);
    try {
      return parse_tensor_format(s, where);
    } catch (const Error& e) {
      bad(where + ".format", fmt::format("= '{}' is not a known tensor format", s));
    }
  }
  // [off, off + n) must lie inside [lo, hi).
  void range(uint64_t off, uint64_t n, uint64_t lo, uint64_t hi, const std::string& where) const {
    if (off < lo || off > hi || n > hi - off)
      bad(where, fmt::format("= [{}, +{}) lies outside [{}, {}) (truncated or corrupt file?)", off,
                             n, lo, hi));
  }
};

bool allowed(WeightClass c, const TensorFormat& f) {
  if (c == WeightClass::kNorm || c == WeightClass::kRouter)
    return f.dtype == DType::kF32 || f.dtype == DType::kBF16;
  return true;
}

MatView view_of(const PackedTensorEntry& t, const uint8_t* base) {
  MatView v;
  v.dtype = t.format.dtype;
  v.rows = t.rows;
  v.cols = t.cols;
  v.group = t.format.group;
  v.data = base + t.data;
  if (t.scales) v.scales = reinterpret_cast<const uint16_t*>(base + t.scales);
  if (t.mins) v.mins = reinterpret_cast<const uint16_t*>(base + t.mins);
  return v;
}

}  // namespace

PackedIndex PackedFile::parse(const uint8_t* data, size_t size, const std::string& name) {
  const Fields F{name};
  if (size < kPackedPreambleBytes)
    fail(ErrorKind::kBadFile, "{}: truncated packed file ({} bytes, expected at least {})", name,
         size, kPackedPreambleBytes);
  if (!is_packed_magic(data, size))
    fail(ErrorKind::kBadFile, "{}: not a coldstream packed file (bad magic)", name);
  uint32_t version = 0;
  uint64_t hoff = 0, hbytes = 0;
  std::memcpy(&version, data + 8, 4);
  std::memcpy(&hoff, data + 16, 8);
  std::memcpy(&hbytes, data + 24, 8);
  if (version != kPackedVersion)
    fail(ErrorKind::kUnsupported, "{}: packed format version {} is not supported (expected {})",
         name, version, kPackedVersion);
  if (hoff != kPackedPreambleBytes || hbytes > size - hoff)
    fail(ErrorKind::kBadFile,
         "{}: truncated packed file: header of {} bytes at {} in a {}-byte file", name, hbytes,
         hoff, size);
  json h;
  try {
    h = json::parse(data + hoff, data + hoff + hbytes);
  } catch (const json::exception& e) {
    fail(ErrorKind::kBadFile, "{}: malformed packed header: {}", name, e.what());
  }
  if (!h.is_object()) F.bad("(root)", "must be an object");
  if (F.str(h, "format", "(root)") != "coldstream-packed")
    F.bad("format", "must be coldstream-packed");

  PackedIndex ix;
  ix.config = parse_hf_config(F.at(h, "config", "(root)"), name + ": header field 'config'");
  const ModelConfig& c = ix.config;
  ix.chat = h.contains("chat") && h["chat"].is_object() ? h["chat"] : json::object();
  ix.provenance = h.contains("provenance") ? h["provenance"] : json::object();

  const json& res = F.at(h, "resident", "(root)");
  ix.resident_offset = F.u64(res, "offset", "resident");
  ix.resident_bytes = F.u64(res, "bytes", "resident");
  ix.resident_xxh3 = F.hex(F.at(res, "xxh3", "resident"), "resident.xxh3");
  F.range(ix.resident_offset, ix.resident_bytes, hoff + hbytes, size, "resident");
  const uint64_t rlo = ix.resident_offset, rhi = rlo + ix.resident_bytes;

  const json& tensors = F.at(h, "tensors", "(root)");
  if (!tensors.is_array()) F.bad("tensors", "must be an array");
  for (size_t i = 0; i < tensors.size(); ++i) {
    const json& e = tensors[i];
    const std::string where = fmt::format("tensors[{}]", i);
    PackedTensorEntry t;
    t.name = F.str(e, "name", where);
    t.format = F.format(e, where);
    t.rows = F.dim(e, "rows", where);
    t.cols = F.dim(e, "cols", where);
    if (uint64_t(t.rows) * uint64_t(t.cols) > 2 * uint64_t(size))
      F.bad(where, fmt::format("'{}' is larger than the file", t.name));
    const bool quant = t.format.dtype == DType::kQ4 || t.format.dtype == DType::kQ8;
    if (quant && (t.cols % t.format.group != 0 || t.cols % 32 != 0))
      F.bad(where, fmt::format("'{}': {} columns are not a multiple of the group of {}", t.name,
                               t.cols, format_name(t.format)));
    // Arrays start on 256-byte boundaries (the writer's alignment): views read them as
    // fp16/f32 arrays, which must be aligned.
    auto array = [&](const char* key, uint64_t n) {
      const uint64_t off = F.u64(e, key, where);
      if (off % kBlobArrayAlign != 0) F.bad(where + "." + key, "is not 256-byte aligned");
      F.range(off, n, rlo, rhi, where + "." + key + " ('" + t.name + "')");
      return off;
    };
    t.data = array("data", t.data_bytes());
    if (quant) t.scales = array("scales", t.scale_bytes());
    if (t.format.asymmetric) t.mins = array("mins", t.scale_bytes());
    if (!ix.tensors.emplace(t.name, t).second) F.bad(where, "'" + t.name + "' appears twice");
  }
  // Every non-expert weight the config implies, with its shape. (Bound the layer count by the
  // tensor count first, so a huge num_hidden_layers cannot make this loop long.)
  if (uint64_t(c.n_layers) > ix.tensors.size())
    F.bad("tensors",
          fmt::format("has {} entries, too few for {} layers", ix.tensors.size(), c.n_layers));
  for (const WeightId& id : non_expert_weights(c)) {
    const std::string n = canonical_name(id);
    auto it = ix.tensors.find(n);
    if (it == ix.tensors.end()) F.bad("tensors", "has no entry '" + n + "'");
    const WeightShape s = weight_shape(c, id);
    if (it->second.rows != s.rows || it->second.cols != s.cols)
      F.bad("tensors", fmt::format("'{}' is [{}, {}], the config implies [{}, {}]", n,
                                   it->second.rows, it->second.cols, s.rows, s.cols));
    if (!allowed(weight_class(id.role), it->second.format))
      F.bad("tensors", fmt::format("'{}' has format {}, expected f32 or bf16", n,
                                   format_name(it->second.format)));
  }

  ix.moe_layers = moe_layers(c);
  const json& ex = F.at(h, "experts", "(root)");
  const json& layers = F.at(ex, "layers", "experts");
  if (!layers.is_array() || layers.size() != ix.moe_layers.size())
    F.bad("experts.layers", fmt::format("must list the {} MoE layers", ix.moe_layers.size()));
  if (!ix.moe_layers.empty()) {
    ix.expert_format = F.format(ex, "experts");
    const TensorFormat& f = ix.expert_format;
    if (F.dim(ex, "hidden", "experts") != c.hidden_size ||
        F.dim(ex, "intermediate", "experts") != c.moe_intermediate_size ||
        F.dim(ex, "count", "experts") != c.n_experts)
      F.bad("experts", "hidden/intermediate/count disagree with the config");
    if (uint64_t(c.hidden_size) * uint64_t(c.moe_intermediate_size) > uint64_t(size))
      F.bad("experts", "an expert is larger than the file (truncated file?)");
    const bool quant = f.dtype == DType::kQ4 || f.dtype == DType::kQ8;
    if (quant && (c.hidden_size % f.group || c.moe_intermediate_size % f.group ||
                  c.hidden_size % 32 || c.moe_intermediate_size % 32))
      F.bad("experts.format", "group does not divide the expert dimensions");
    ix.expert_layout =
        make_expert_layout(f.dtype, c.hidden_size, c.moe_intermediate_size, f.group, f.asymmetric);
    if (F.u64(ex, "blob_bytes", "experts") != ix.expert_layout.bytes)
      F.bad("experts.blob_bytes", fmt::format("must be {}", ix.expert_layout.bytes));
  }
  const uint64_t E = uint64_t(c.n_experts), blob = ix.expert_layout.bytes;
  for (size_t m = 0; m < ix.moe_layers.size(); ++m) {
    const std::string where = fmt::format("experts.layers[{}]", m);
    const json& L = layers[m];
    if (F.u64(L, "layer", where) != uint64_t(ix.moe_layers[m]))
      F.bad(where + ".layer", fmt::format("must be {}", ix.moe_layers[m]));
    const uint64_t off = F.u64(L, "offset", where);
    if (off % kPackedSectionAlign != 0) F.bad(where + ".offset", "is not 4096-byte aligned");
    if (off > size || (blob != 0 && E > (size - off) / blob))
      F.bad(where, "has more expert blobs than the file holds (truncated file?)");
    F.range(off, E * blob, rhi, size, where + " (expert blobs)");
    ix.layer_offset.push_back(off);
    const json& sums = F.at(L, "xxh3", where);
    if (!sums.is_array() || sums.size() != E)
      F.bad(where + ".xxh3", fmt::format("must hold {} checksums", E));
    for (uint64_t e = 0; e < E; ++e) ix.expert_xxh3.push_back(F.hex(sums[e], where + ".xxh3"));
  }
  if (h.contains("tokenizer")) {
    const json& t = h["tokenizer"];
    ix.tokenizer_kind = F.str(t, "kind", "tokenizer");
    ix.tokenizer_offset = F.u64(t, "offset", "tokenizer");
    ix.tokenizer_bytes = F.u64(t, "bytes", "tokenizer");
    ix.tokenizer_xxh3 = F.hex(F.at(t, "xxh3", "tokenizer"), "tokenizer.xxh3");
    F.range(ix.tokenizer_offset, ix.tokenizer_bytes, hoff + hbytes, size, "tokenizer");
  }
  return ix;
}

PackedFile::PackedFile(const std::string& path) : file_(path) {
  index_ = parse(file_.data(), file_.size(), path);
}

std::optional<PackedFile::TokenizerView> PackedFile::tokenizer_blob() const {
  if (!index_.tokenizer_kind) return std::nullopt;
  const char* p = reinterpret_cast<const char*>(data() + index_.tokenizer_offset);
  return TokenizerView{*index_.tokenizer_kind, std::string_view(p, index_.tokenizer_bytes)};
}

MatView PackedFile::tensor(const std::string& name) const {
  auto it = index_.tensors.find(name);
  return it == index_.tensors.end() ? MatView{} : view_of(it->second, data());
}

uint64_t PackedFile::expert_offset(size_t moe_index, int expert) const {
  return index_.layer_offset.at(moe_index) + uint64_t(expert) * index_.expert_layout.bytes;
}

ExpertWeights PackedFile::expert(size_t moe_index, int expert) const {
  return expert_views(index_.expert_layout, data() + expert_offset(moe_index, expert));
}

void PackedFile::verify_expert(size_t moe_index, int expert) const {
  const uint64_t want = index_.expert_xxh3.at(moe_index * size_t(config().n_experts) + expert);
  const uint64_t got = xxh3(data() + expert_offset(moe_index, expert), index_.expert_layout.bytes);
  if (got != want)
    fail(ErrorKind::kBadFile,
         "{}: checksum mismatch in the blob of layer {} expert {} (xxh3 {}, header says {}): the "
         "file is corrupt",
         path(), index_.moe_layers.at(moe_index), expert, checksum_hex(got), checksum_hex(want));
}

void PackedFile::verify_resident() const {
  const uint64_t got = xxh3(data() + index_.resident_offset, index_.resident_bytes);
  if (got != index_.resident_xxh3)
    fail(ErrorKind::kBadFile,
         "{}: checksum mismatch in the resident tensors (xxh3 {}, header says {}): the file is "
         "corrupt",
         path(), checksum_hex(got), checksum_hex(index_.resident_xxh3));
  if (index_.tokenizer_kind &&
      xxh3(data() + index_.tokenizer_offset, index_.tokenizer_bytes) != index_.tokenizer_xxh3)
    fail(ErrorKind::kBadFile, "{}: checksum mismatch in the tokenizer blob", path());
}

void PackedFile::verify_all(const std::function<void(uint64_t, uint64_t)>& progress) const {
  const uint64_t blob = index_.expert_layout.bytes;
  const uint64_t total = index_.resident_bytes + index_.expert_xxh3.size() * blob;
  verify_resident();
  uint64_t done = index_.resident_bytes;
  for (size_t m = 0; m < index_.moe_layers.size(); ++m)
    for (int e = 0; e < config().n_experts; ++e) {
      verify_expert(m, e);
      done += blob;
      if (progress) progress(done, total);
    }
}

}  // namespace cs
