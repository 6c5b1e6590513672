// The NVMe tier with real io_uring reads of a scratch file, and fault injection through the
// reader's interface: transient faults are retried away, permanent ones surface with the file,
// offset, layer and expert, and corrupt data is never reported as good.
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "common/error.h"
#include "offload/blob_pack.h"
#include "offload/nvme_reader.h"
#include "tests/common/fixtures.h"

using namespace cs;

namespace {

struct BlobFile {
  test::TempDir dir;
  ExpertLocator loc;
  ExpertLayout layout = make_expert_layout(DType::kQ4, 256, 128, 32, false);
  BlobFile() {
    loc = write_blob_file(dir.file("experts.bin"), 2, 4, {layout, layout},
                          [&](int l, int e, void* dst) {
                            fill_random_q4_blob(layout, uint64_t(l * 4 + e), 1.0f, dst);
                          });
  }
};

struct Aligned {
  std::unique_ptr<uint8_t, decltype(&std::free)> p;
  explicit Aligned(size_t n)
      : p(static_cast<uint8_t*>(std::aligned_alloc(4096, (n + 4095) / 4096 * 4096)), &std::free) {}
  uint8_t* get() const { return p.get(); }
};

BlobRead request(const ExpertLocator& loc, ExpertId id, void* dst) {
  const ExpertBlobLocation& b = loc.at(id.layer, id.expert);
  return {id, b.offset, b.bytes, b.xxh3, dst};
}

bool matches(const BlobFile& f, ExpertId id, const uint8_t* got) {
  Aligned want(f.layout.bytes);
  fill_random_q4_blob(f.layout, uint64_t(id.layer * 4 + id.expert), 1.0f, want.get());
  return std::memcmp(want.get(), got, f.layout.bytes) == 0;
}

}  // namespace

TEST_CASE("nvme reader: every blob arrives intact, in reads of read_size, registered or not") {
  BlobFile f;
  validate_locator(f.loc, std::filesystem::file_size(f.loc.path));
  for (bool reg : {true, false}) {
    CAPTURE(reg);
    const size_t n = f.layout.bytes;
    Aligned arena(8 * n);
    NvmeOptions o;
    o.read_size = 4096;  // several reads per blob
    o.queue_depth = 3;
    o.register_buffers = reg;
    NvmeReader r(f.loc.path, o, {arena.get(), 8 * n});
    std::vector<uint64_t> tickets;
    for (int i = 0; i < 8; ++i)
      tickets.push_back(r.submit(request(f.loc, {i / 4, i % 4}, arena.get() + size_t(i) * n)));
    for (int i = 0; i < 8; ++i) {
      const ReadOutcome o2 = r.wait(tickets[size_t(i)]);
      CHECK(o2.ok);
      CHECK(matches(f, {i / 4, i % 4}, arena.get() + size_t(i) * n));
    }
    CHECK(r.stats().bytes == 8 * n);
    CHECK(r.stats().reads >= 8 * n / 4096);
    for (const auto& note : r.notes()) MESSAGE(note);
  }
}

TEST_CASE("nvme reader: transient faults are retried until the blob is good") {
  BlobFile f;
  auto faults = std::make_shared<ScriptedFaults>();
  faults->add({0, 1}, FaultKind::kError, 2);
  faults->add({0, 2}, FaultKind::kCorrupt, 1);
  faults->add({0, 3}, FaultKind::kShort, 1);
  faults->add({1, 0}, FaultKind::kDelay, 1, std::chrono::milliseconds(20));
  NvmeOptions o;
  o.faults = faults;
  o.retries = 3;
  NvmeReader r(f.loc.path, o);
  Aligned buf(4 * f.layout.bytes);
  const ExpertId ids[] = {{0, 1}, {0, 2}, {0, 3}, {1, 0}};
  std::vector<uint64_t> t;
  for (int i = 0; i < 4; ++i)
    t.push_back(r.submit(request(f.loc, ids[i], buf.get() + i * f.layout.bytes)));
  for (int i = 0; i < 4; ++i) {
    CAPTURE(i);
    const ReadOutcome out = r.wait(t[size_t(i)]);
    CHECK(out.ok);
    CHECK(matches(f, ids[i], buf.get() + i * f.layout.bytes));
  }
  CHECK(r.stats().checksum_failures == 1);
  CHECK(r.stats().short_reads >= 1);
  CHECK(r.stats().retries >= 3);
  CHECK(faults->fired({1, 0}) == 1);
}

TEST_CASE("nvme reader: permanent faults fail the blob with file, offset, layer and expert") {
  BlobFile f;
  auto faults = std::make_shared<ScriptedFaults>();
  faults->add({1, 2}, FaultKind::kError, -1);
  faults->add({1, 3}, FaultKind::kCorrupt, -1);
  NvmeOptions o;
  o.faults = faults;
  o.retries = 2;
  NvmeReader r(f.loc.path, o);
  Aligned buf(2 * f.layout.bytes);
  const ReadOutcome e = r.wait(r.submit(request(f.loc, {1, 2}, buf.get())));
  CHECK_FALSE(e.ok);
  CHECK_FALSE(e.corrupt);
  const std::string where = fmt::format(
      "{}: reading layer 1 expert 2 (offset {}, {} bytes) failed "
      "after 3 attempt(s): read of",
      f.loc.path, f.loc.at(1, 2).offset, f.layout.bytes);
  CHECK(e.error.find(where) == 0);
  CHECK(e.error.find("Input/output error") != std::string::npos);
  const ReadOutcome c = r.wait(r.submit(request(f.loc, {1, 3}, buf.get() + f.layout.bytes)));
  CHECK_FALSE(c.ok);
  CHECK(c.corrupt);
  CHECK(c.error.find("layer 1 expert 3") != std::string::npos);
  CHECK(c.error.find("checksum mismatch") != std::string::npos);
  CHECK(r.stats().failed_blobs == 2);
  // A blob past the end of the file is a short read.
  BlobRead past = request(f.loc, {1, 3}, buf.get());
  past.offset = (std::filesystem::file_size(f.loc.path) / 4096 + 4) * 4096;
  const ReadOutcome s = r.wait(r.submit(past));
  CHECK_FALSE(s.ok);
  CHECK(s.error.find("short read") != std::string::npos);
  // Misaligned requests are refused up front.
  BlobRead bad = request(f.loc, {0, 0}, buf.get() + 1);
  CHECK_THROWS_AS(r.submit(bad), Error);
  CHECK_THROWS_AS(NvmeReader("/nonexistent/experts.bin", NvmeOptions{}), Error);
}

TEST_CASE("expert locator: validation names the layer and expert") {
  BlobFile f;
  ExpertLocator bad = f.loc;
  bad.at(1, 1).offset += 512;
  CHECK_THROWS_WITH_AS(validate_locator(bad, std::filesystem::file_size(f.loc.path)),
                       doctest::Contains("layer 1 expert 1: offset"), Error);
  bad = f.loc;
  bad.at(0, 3).offset = bad.at(0, 2).offset;
  CHECK_THROWS_WITH_AS(validate_locator(bad, std::filesystem::file_size(f.loc.path)),
                       doctest::Contains("overlap"), Error);
  CHECK_THROWS_WITH_AS(validate_locator(f.loc, 4096), doctest::Contains("past the end"), Error);
}
