#include "runtime/format/gguf_writer.h"

#include "common/error.h"
#include "runtime/format/gguf.h"
#include "runtime/format/gguf_quants.h"
#include "runtime/format/packed_format.h"

namespace cs {
namespace {

template <typename T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
void put_str(std::string& s, const std::string& v) {
  put<uint64_t>(s, v.size());
  s += v;
}

enum : uint32_t { kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9 };

}  // namespace

GgufWriter::GgufWriter(OutputFile& out, uint64_t alignment) : out_(out), alignment_(alignment) {
  if (alignment != 32) set_u32("general.alignment", uint32_t(alignment));
}

void GgufWriter::key(const std::string& k, uint32_t type) {
  put_str(kv_, k);
  put<uint32_t>(kv_, type);
  ++n_kv_;
}

void GgufWriter::set_u32(const std::string& k, uint32_t v) {
  key(k, kU32), put(kv_, v);
}
void GgufWriter::set_i32(const std::string& k, int32_t v) {
  key(k, kI32), put(kv_, v);
}
void GgufWriter::set_f32(const std::string& k, float v) {
  key(k, kF32), put(kv_, v);
}
void GgufWriter::set_bool(const std::string& k, bool v) {
  key(k, kBool), put<uint8_t>(kv_, v);
}
void GgufWriter::set_str(const std::string& k, const std::string& v) {
  key(k, kString);
  put_str(kv_, v);
}
void GgufWriter::set_strs(const std::string& k, const std::vector<std::string>& v) {
  key(k, kArray);
  put<uint32_t>(kv_, kString);
  put<uint64_t>(kv_, v.size());
  for (const std::string& s : v) put_str(kv_, s);
}
void GgufWriter::set_i32s(const std::string& k, const std::vector<int32_t>& v) {
  key(k, kArray);
  put<uint32_t>(kv_, kI32);
  put<uint64_t>(kv_, v.size());
  for (int32_t x : v) put(kv_, x);
}
void GgufWriter::set_f32s(const std::string& k, const std::vector<float>& v) {
  key(k, kArray);
  put<uint32_t>(kv_, kF32);
  put<uint64_t>(kv_, v.size());
  for (float x : v) put(kv_, x);
}

size_t GgufWriter::add_tensor(const std::string& name, uint32_t type, std::vector<int64_t> dims) {
  if (!ggml_type_supported(type))
    fail(ErrorKind::kInvalidArgument, "{}: cannot write GGML type {}", out_.dest(),
         ggml_type_name(type));
  Tensor t{name, type, std::move(dims)};
  int64_t rows = 1;
  for (size_t d = 1; d < t.dims.size(); ++d) rows *= t.dims[d];
  t.bytes = uint64_t(rows) * gguf_row_bytes(type, t.dims[0]);
  tensors_.push_back(std::move(t));
  return tensors_.size() - 1;
}

void GgufWriter::layout() {
  std::string head = "GGUF";
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, n_kv_);
  head += kv_;
  uint64_t rel = 0;
  for (Tensor& t : tensors_) {
    t.rel_offset = rel;
    rel = align_up(rel + t.bytes, alignment_);
    put_str(head, t.name);
    put<uint32_t>(head, uint32_t(t.dims.size()));
    for (int64_t d : t.dims) put<uint64_t>(head, uint64_t(d));
    put<uint32_t>(head, t.type);
    put<uint64_t>(head, t.rel_offset);
  }
  const uint64_t start = align_up(head.size(), alignment_);
  head.resize(start, '\0');
  out_.write_at(0, head.data(), head.size());
  for (Tensor& t : tensors_) t.file_offset = start + t.rel_offset;
  file_bytes_ = start + rel;
}

void GgufWriter::write(size_t i, uint64_t offset, const void* data, size_t n) {
  const Tensor& t = tensors_.at(i);
  if (offset + n > t.bytes)
    fail(ErrorKind::kInternal, "{}: write past the end of tensor '{}'", out_.dest(), t.name);
  out_.write_at(t.file_offset + offset, data, n);
}

void GgufWriter::finish() {
  out_.commit(file_bytes_);
}

}  // namespace cs
