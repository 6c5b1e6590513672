#include "offload/host_tier.h"

#include <sys/stat.h>

#include "common/error.h"
#include "common/units.h"

namespace cs {
namespace {
constexpr uint64_t kRegion = 1ull << 30;
}

HostTier::HostTier(const ExpertLocator& locator, HostTierOptions options, int min_slots)
    : locator_(locator), opt_(std::move(options)) {
  uint64_t file_size = 0;
  if (!locator_.path.empty()) {
    struct stat st {};
    if (::stat(locator_.path.c_str(), &st) != 0)
      fail(ErrorKind::kNotFound, "{}: cannot stat the packed file", locator_.path);
    file_size = uint64_t(st.st_size);
  }
  validate_locator(locator_, file_size);
  slot_bytes_ = locator_.max_blob_bytes();
  if (slot_bytes_ == 0 || slot_bytes_ > kRegion)
    fail(ErrorKind::kUnsupported, "expert blobs of {} bytes: expected 4 KiB .. 1 GiB", slot_bytes_);
  slots_per_region_ = int(kRegion / slot_bytes_);
  const int experts = locator_.present_count();
  const uint64_t total = locator_.total_bytes();
  const bool full = opt_.budget == 0 || opt_.budget >= total;
  n_slots_ = full ? experts : int(opt_.budget / slot_bytes_);
  if (n_slots_ < std::min(min_slots, experts))
    fail(ErrorKind::kOutOfMemory,
         "host expert budget of {} holds {} expert blobs of {}; at least {} are needed (raise "
         "memory.host_budget / --host-budget)",
         format_bytes(double(opt_.budget)), n_slots_, format_bytes(double(slot_bytes_)), min_slots);
  if (!full && locator_.path.empty())
    fail(ErrorKind::kUnsupported,
         "host expert budget of {} holds {} of {} experts, but the experts are not in a packed "
         "file to stream the rest from; raise memory.host_budget to at least {} or convert the "
         "model (coldstream convert)",
         format_bytes(double(opt_.budget)), n_slots_, experts, format_bytes(double(total)));
  const uint64_t regions = uint64_t(n_slots_) / uint64_t(slots_per_region_);
  const uint64_t rest = uint64_t(n_slots_) % uint64_t(slots_per_region_);
  opt_.arena.bytes = regions * kRegion + rest * slot_bytes_;
  opt_.arena.region = kRegion;  // pinned ranges never cut a blob
  opt_.arena.blob = slot_bytes_;
  arena_ = std::make_unique<HostArena>(opt_.arena);
  if (full) {
    fixed_.assign(locator_.blobs.size(), -1);
    int s = 0;
    for (size_t i = 0; i < locator_.blobs.size(); ++i)
      if (locator_.blobs[i].present()) fixed_[i] = s++;
  } else {
    CacheGeometry g;
    g.n_slots = n_slots_;
    g.n_layers = locator_.n_layers;
    g.n_experts = locator_.n_experts;
    g.layers = locator_.layers_with_experts();
    cache_ = make_slot_cache(g, opt_.policy, opt_.decay);
  }
  if (!locator_.path.empty())
    reader_ = std::make_unique<NvmeReader>(locator_.path, opt_.io,
                                           std::span<uint8_t>(arena_->data(), arena_->size()));
}

uint8_t* HostTier::slot_ptr(int slot) const {
  const uint64_t r = uint64_t(slot) / uint64_t(slots_per_region_);
  const uint64_t i = uint64_t(slot) % uint64_t(slots_per_region_);
  return arena_->data() + r * kRegion + i * slot_bytes_;
}

int HostTier::fixed_slot(ExpertId id) const {
  return fixed_.empty() ? -1 : fixed_.at(id.index(locator_.n_experts));
}

uint8_t* HostTier::blob(ExpertId id) const {
  const int s = cache_ ? cache_->find(id) : fixed_slot(id);
  return s < 0 ? nullptr : slot_ptr(s);
}

void HostTier::load_all_from_file(const std::function<void(int, int)>& progress) {
  if (!full() || !reader_)
    fail(ErrorKind::kInternal, "host tier: load_all_from_file needs a full tier and a file");
  std::vector<uint64_t> tickets;
  for (int l = 0; l < locator_.n_layers; ++l)
    for (int e = 0; e < locator_.n_experts; ++e) {
      const ExpertBlobLocation& b = locator_.at(l, e);
      if (!b.present()) continue;
      tickets.push_back(
          reader_->submit({{l, e}, b.offset, b.bytes, b.xxh3, slot_ptr(fixed_slot({l, e}))}));
    }
  const int n = int(tickets.size());
  std::string first_error;
  ErrorKind kind = ErrorKind::kIo;
  for (int i = 0; i < n; ++i) {
    const ReadOutcome o = reader_->wait(tickets[size_t(i)]);
    if (!o.ok && first_error.empty()) {
      first_error = o.error;
      kind = o.corrupt ? ErrorKind::kBadFile : ErrorKind::kIo;
    }
    if (progress && (i % 64 == 63 || i == n - 1)) progress(i + 1, n);
  }
  if (!first_error.empty()) fail(kind, "{}", first_error);
}

void HostTier::load_all(const std::function<void(ExpertId, void*)>& fill) {
  if (!full()) fail(ErrorKind::kInternal, "host tier: load_all needs a full tier");
  for (int l = 0; l < locator_.n_layers; ++l)
    for (int e = 0; e < locator_.n_experts; ++e)
      if (locator_.at(l, e).present()) fill({l, e}, slot_ptr(fixed_slot({l, e})));
}

}  // namespace cs
