#include "runtime/format/packed_writer.h"

#include <xxhash.h>
#include <algorithm>
#include <cstring>
#include <memory>

#include "common/error.h"
#include "runtime/model/weight_id.h"

namespace cs {

using nlohmann::json;

PackedWriter::PackedWriter(OutputFile& out, PackedHeaderInfo info,
                           std::vector<PackedTensorEntry> tensors, TensorFormat expert_format)
    : out_(out),
      info_(std::move(info)),
      tensors_(std::move(tensors)),
      expert_format_(expert_format),
      moe_layers_(moe_layers(info_.config)) {
  const ModelConfig& c = info_.config;
  if (!moe_layers_.empty())
    layout_ = make_expert_layout(expert_format.dtype, c.hidden_size, c.moe_intermediate_size,
                                 expert_format.group, expert_format.asymmetric);
  const size_t n_blobs = moe_layers_.size() * size_t(c.n_experts);
  expert_hash_.assign(n_blobs, 0);
  expert_written_.assign(n_blobs, 0);
  // The header's size depends on the offsets it records and the offsets on the header's size:
  // grow the reserved capacity until the header fits. Checksums are fixed-width, so the final
  // header (written by finish) has exactly the size measured here.
  header_capacity_ = kPackedSectionAlign;
  for (;;) {
    tokenizer_offset_ = header_capacity_;
    const uint64_t tok_bytes = info_.tokenizer ? info_.tokenizer->bytes.size() : 0;
    resident_offset_ = align_up(tokenizer_offset_ + tok_bytes, kPackedSectionAlign);
    uint64_t off = resident_offset_;
    for (PackedTensorEntry& t : tensors_) {
      t.data = off;
      off = align_up(off + t.data_bytes(), kBlobArrayAlign);
      t.scales = t.mins = 0;
      if (t.scale_bytes()) {
        t.scales = off;
        off = align_up(off + t.scale_bytes(), kBlobArrayAlign);
        if (t.format.asymmetric) {
          t.mins = off;
          off = align_up(off + t.scale_bytes(), kBlobArrayAlign);
        }
      }
    }
    resident_bytes_ = off - resident_offset_;
    experts_offset_ = align_up(off, kPackedSectionAlign);
    file_bytes_ = experts_offset_ + n_blobs * layout_.bytes;
    const uint64_t need = kPackedPreambleBytes + header_json().dump().size();
    if (need <= header_capacity_) break;
    header_capacity_ = align_up(need + need / 8, kPackedSectionAlign);
  }
  if (info_.tokenizer) {
    const std::string& b = info_.tokenizer->bytes;
    out_.write_at(tokenizer_offset_, b.data(), b.size());
    tokenizer_hash_ = xxh3(b.data(), b.size());
  }
}

size_t PackedWriter::moe_index(int layer) const {
  auto it = std::find(moe_layers_.begin(), moe_layers_.end(), layer);
  if (it == moe_layers_.end())
    fail(ErrorKind::kInternal, "{}: layer {} is not a MoE layer", out_.dest(), layer);
  return size_t(it - moe_layers_.begin());
}

void PackedWriter::write_rows(size_t index, int64_t row0, int64_t n, const void* data,
                              const uint16_t* scales, const uint16_t* mins) {
  const PackedTensorEntry& t = tensors_.at(index);
  if (row0 < 0 || n < 0 || row0 + n > t.rows)
    fail(ErrorKind::kInternal, "{}: rows {}..{} outside tensor '{}'", out_.dest(), row0, row0 + n,
         t.name);
  const uint64_t row_bytes = t.data_bytes() / uint64_t(t.rows);
  out_.write_at(t.data + uint64_t(row0) * row_bytes, data, size_t(n) * row_bytes);
  if (t.scale_bytes()) {
    const uint64_t srow = t.scale_bytes() / uint64_t(t.rows);
    out_.write_at(t.scales + uint64_t(row0) * srow, scales, size_t(n) * srow);
    if (t.format.asymmetric) out_.write_at(t.mins + uint64_t(row0) * srow, mins, size_t(n) * srow);
  }
}

void PackedWriter::write_expert(int layer, int expert, const uint8_t* blob) {
  const size_t i = moe_index(layer) * size_t(info_.config.n_experts) + size_t(expert);
  out_.write_at(experts_offset_ + i * layout_.bytes, blob, layout_.bytes);
  expert_hash_[i] = xxh3(blob, layout_.bytes);
  expert_written_[i] = 1;
}

json PackedWriter::header_json() const {
  json tensors = json::array();
  for (const PackedTensorEntry& t : tensors_) {
    json e = {{"name", t.name},
              {"format", format_name(t.format)},
              {"rows", t.rows},
              {"cols", t.cols},
              {"data", t.data}};
    if (t.scales) e["scales"] = t.scales;
    if (t.mins) e["mins"] = t.mins;
    tensors.push_back(std::move(e));
  }
  json layers = json::array();
  const size_t E = size_t(info_.config.n_experts);
  for (size_t m = 0; m < moe_layers_.size(); ++m) {
    json sums = json::array();
    for (size_t e = 0; e < E; ++e) sums.push_back(checksum_hex(expert_hash_[m * E + e]));
    layers.push_back({{"layer", moe_layers_[m]},
                      {"offset", experts_offset_ + m * E * layout_.bytes},
                      {"xxh3", std::move(sums)}});
  }
  json h = {{"format", "coldstream-packed"},
            {"version", kPackedVersion},
            {"config", config_to_json(info_.config)},
            {"chat", info_.chat},
            {"provenance", info_.provenance},
            {"resident",
             {{"offset", resident_offset_},
              {"bytes", resident_bytes_},
              {"xxh3", checksum_hex(resident_hash_)}}},
            {"tensors", std::move(tensors)},
            {"experts",
             {{"format", format_name(expert_format_)},
              {"hidden", info_.config.hidden_size},
              {"intermediate", info_.config.moe_intermediate_size},
              {"count", info_.config.n_experts},
              {"blob_bytes", layout_.bytes},
              {"layers", std::move(layers)}}}};
  if (info_.tokenizer)
    h["tokenizer"] = {{"kind", info_.tokenizer->kind},
                      {"offset", tokenizer_offset_},
                      {"bytes", info_.tokenizer->bytes.size()},
                      {"xxh3", checksum_hex(tokenizer_hash_)}};
  return h;
}

void PackedWriter::finish() {
  for (size_t i = 0; i < expert_written_.size(); ++i)
    if (!expert_written_[i])
      fail(ErrorKind::kInternal, "{}: expert blob {} of layer {} was never written", out_.dest(),
           i % size_t(info_.config.n_experts), moe_layers_[i / size_t(info_.config.n_experts)]);
  // The resident section is checksummed as it lies on disk, padding included.
  std::vector<uint8_t> buf(size_t(8) << 20);
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                 &XXH3_freeState);
  XXH3_64bits_reset(state.get());
  for (uint64_t done = 0; done < resident_bytes_;) {
    const size_t n = size_t(std::min<uint64_t>(buf.size(), resident_bytes_ - done));
    out_.read_at(resident_offset_ + done, buf.data(), n);
    XXH3_64bits_update(state.get(), buf.data(), n);
    done += n;
  }
  resident_hash_ = XXH3_64bits_digest(state.get());
  const std::string text = header_json().dump();
  std::string head(header_capacity_, ' ');
  std::memcpy(head.data(), kPackedMagic, 8);
  const uint32_t version = kPackedVersion, zero = 0;
  const uint64_t hoff = kPackedPreambleBytes, hbytes = text.size();
  std::memcpy(head.data() + 8, &version, 4);
  std::memcpy(head.data() + 12, &zero, 4);
  std::memcpy(head.data() + 16, &hoff, 8);
  std::memcpy(head.data() + 24, &hbytes, 8);
  if (kPackedPreambleBytes + text.size() > header_capacity_)
    fail(ErrorKind::kInternal, "{}: header grew past its reserved size", out_.dest());
  std::memcpy(head.data() + kPackedPreambleBytes, text.data(), text.size());
  out_.write_at(0, head.data(), head.size());
  out_.commit(file_bytes_);
}

}  // namespace cs
