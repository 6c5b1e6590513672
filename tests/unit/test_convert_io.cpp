// Conversion output: never half-written (disk full, injected write failures), never overwritten
// without --force; quantization policies from flags and TOML.
#include <doctest/doctest.h>

#include <sys/mount.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "runtime/format/checkpoint.h"
#include "runtime/format/converter.h"
#include "runtime/format/synth.h"
#include "tests/common/fixtures.h"

using namespace cs;
namespace fs = std::filesystem;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool only_file_is(const std::string& dir, const std::string& name) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename() != name) return false;
  return true;
}

}  // namespace

TEST_CASE("disk full while converting (injected): a clean error and nothing at the destination") {
  test::TempDir tmp;
  auto in = open_checkpoint(test::fixture("qwen3moe"));
  ConvertOptions o;
  uint64_t written = 0;
  o.pwrite = [&](int fd, const void* b, size_t n, off_t off) -> ssize_t {
    if (written + n > 100000) {
      errno = ENOSPC;
      return -1;
    }
    written += n;
    return ::pwrite(fd, b, n, off);
  };
  const std::string e = error_of([&] { convert_to_packed(*in, tmp.file("out.cst"), o); });
  CHECK(e.find("out.cst") != std::string::npos);
  CHECK(e.find("disk full") != std::string::npos);
  CHECK(fs::is_empty(tmp.path()));  // no destination, no temporary file
}

TEST_CASE("disk full while converting (a real 256 KiB tmpfs, when mounting is allowed)") {
  test::TempDir tmp;
  const std::string mnt = tmp.file("small");
  fs::create_directory(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=256k") != 0) {
    MESSAGE("tmpfs mount not permitted here (" << std::strerror(errno) << "); skipped");
    return;
  }
  auto in = open_checkpoint(test::fixture("mixtral"));
  ConvertOptions o;
  o.policy.experts = {DType::kF32, 0, false};
  const std::string e = error_of([&] { convert_to_packed(*in, mnt + "/out.cst", o); });
  const bool empty = fs::is_empty(mnt);
  ::umount(mnt.c_str());
  CHECK(e.find("disk full") != std::string::npos);
  CHECK(empty);
}

TEST_CASE("an existing destination is kept unless forced") {
  test::TempDir tmp;
  auto in = open_checkpoint(test::fixture("qwen3moe"));
  std::ofstream(tmp.file("out.cst")) << "precious";
  ConvertOptions o;
  const std::string e = error_of([&] { convert_to_packed(*in, tmp.file("out.cst"), o); });
  CHECK(e.find("--force") != std::string::npos);
  CHECK(fs::file_size(tmp.file("out.cst")) == 8);
  o.force = true;
  convert_to_packed(*in, tmp.file("out.cst"), o);
  CHECK(fs::file_size(tmp.file("out.cst")) > 8);
  CHECK(only_file_is(tmp.path(), "out.cst"));
}

TEST_CASE("quantization policy: formats, TOML, errors naming the flag or key") {
  CHECK(format_name(parse_tensor_format("q4-asym/128", "--experts")) == "q4-asym/128");
  CHECK(parse_tensor_format("bf16", "x").dtype == DType::kBF16);
  CHECK(error_of([] { parse_tensor_format("q4/48", "--experts"); }).find("--experts") !=
        std::string::npos);
  std::string note;
  CHECK(format_name(fit_format({DType::kQ4, 128, false}, 192, &note)) == "q4/64");
  CHECK(!note.empty());
  CHECK(fit_format({DType::kQ4, 32, false}, 48, nullptr).dtype == DType::kBF16);
  test::TempDir tmp;
  std::ofstream(tmp.file("p.toml")) << "experts = \"q4-asym/64\"\nattention = \"bf16\"\n";
  QuantPolicy p;
  p.load_toml(tmp.file("p.toml"));
  CHECK(format_name(p.experts) == "q4-asym/64");
  CHECK(p.attention.dtype == DType::kBF16);
  std::ofstream(tmp.file("bad.toml")) << "expert = \"q4/32\"\n";
  CHECK(error_of([&] { p.load_toml(tmp.file("bad.toml")); }).find("'expert'") != std::string::npos);
  std::ofstream(tmp.file("norm.toml")) << "norms = \"q8/32\"\n";
  CHECK(error_of([&] { p.load_toml(tmp.file("norm.toml")); }).find("norms") != std::string::npos);
}

TEST_CASE("synth: a wrong --shape lists the known shapes; --layers is checked") {
  CHECK(error_of([] { synth_shape("qwen3-236b", 0); }).find("qwen3-235b-a22b") !=
        std::string::npos);
  CHECK(error_of([] { synth_shape("mixtral-8x7b", 33); }).find("--layers") != std::string::npos);
  CHECK(synth_shape("qwen3-235b-a22b", 20).n_layers == 20);
  CHECK(synth_shape("qwen3-235b-a22b", 0).vocab_size == 151936);
}
