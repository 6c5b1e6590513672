#include "offload/expert_locator.h"

#include <xxhash.h>

#include <algorithm>

#include "common/error.h"

namespace cs {

uint64_t ExpertLocator::max_blob_bytes() const {
  uint64_t m = 0;
  for (const auto& b : blobs) m = std::max(m, b.bytes);
  return m;
}

uint64_t ExpertLocator::total_bytes() const {
  uint64_t s = 0;
  for (const auto& b : blobs) s += b.bytes;
  return s;
}

int ExpertLocator::present_count() const {
  int n = 0;
  for (const auto& b : blobs) n += b.present();
  return n;
}

std::vector<int> ExpertLocator::layers_with_experts() const {
  std::vector<int> out;
  for (int l = 0; l < n_layers; ++l)
    for (int e = 0; e < n_experts; ++e)
      if (at(l, e).present()) {
        out.push_back(l);
        break;
      }
  return out;
}

void validate_locator(const ExpertLocator& loc, uint64_t file_size) {
  const std::string& p = loc.path.empty() ? std::string("<memory>") : loc.path;
  if (loc.n_layers <= 0 || loc.n_experts <= 0 ||
      loc.blobs.size() != size_t(loc.n_layers) * size_t(loc.n_experts))
    fail(ErrorKind::kBadFile, "{}: expert table has {} entries for {} layers x {} experts", p,
         loc.blobs.size(), loc.n_layers, loc.n_experts);
  struct Span {
    uint64_t begin, end;
    int layer, expert;
  };
  std::vector<Span> spans;
  for (int l = 0; l < loc.n_layers; ++l)
    for (int e = 0; e < loc.n_experts; ++e) {
      const ExpertBlobLocation& b = loc.at(l, e);
      if (!b.present()) continue;
      if (b.bytes % kBlobAlign || b.bytes != b.layout.bytes)
        fail(
            ErrorKind::kBadFile,
            "{}: layer {} expert {}: blob of {} bytes, expected its layout's {} (a multiple of {})",
            p, l, e, b.bytes, b.layout.bytes, kBlobAlign);
      if (loc.path.empty()) continue;
      if (b.offset % kBlobAlign)
        fail(ErrorKind::kBadFile, "{}: layer {} expert {}: offset {} is not a multiple of {}", p, l,
             e, b.offset, kBlobAlign);
      if (b.offset > file_size || b.bytes > file_size - b.offset)
        fail(ErrorKind::kBadFile,
             "{}: layer {} expert {}: blob [{}, {}) ends past the end of the file ({} bytes)", p, l,
             e, b.offset, b.offset + b.bytes, file_size);
      spans.push_back({b.offset, b.offset + b.bytes, l, e});
    }
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].begin < spans[i - 1].end)
      fail(ErrorKind::kBadFile, "{}: blobs of layer {} expert {} and layer {} expert {} overlap", p,
           spans[i - 1].layer, spans[i - 1].expert, spans[i].layer, spans[i].expert);
}

uint64_t blob_checksum(const void* data, size_t bytes) {
  return XXH3_64bits(data, bytes);
}

}  // namespace cs
