// The packed file: what the writer lays out, the reader finds; bad files fail with messages that
// name the field, the layer and the expert.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "kernels/quant.h"
#include "runtime/engine/session.h"
#include "runtime/format/packed_reader.h"
#include "runtime/format/synth.h"
#include "tests/common/fixtures.h"

using namespace cs;
namespace fs = std::filesystem;

namespace {

std::string make_tiny(const test::TempDir& tmp, const std::string& name = "m.cst") {
  SynthOptions o;
  o.shape = "tiny-qwen3";
  o.out = tmp.file(name);
  write_synth(o);
  return o.out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string read_all(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

void write_all(const std::string& p, const std::string& s) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << s;
}

}  // namespace

TEST_CASE("packed file: layout is aligned for O_DIRECT and every view lies in the file") {
  test::TempDir tmp;
  PackedFile f(make_tiny(tmp));
  const PackedIndex& ix = f.index();
  CHECK(ix.expert_layout.bytes % 4096 == 0);
  CHECK(ix.resident_offset % 4096 == 0);
  for (size_t m = 0; m < ix.moe_layers.size(); ++m)
    for (int e = 0; e < f.config().n_experts; ++e) {
      CHECK(f.expert_offset(m, e) % 4096 == 0);
      CHECK(f.expert_offset(m, e) + ix.expert_layout.bytes <= f.size());
      f.verify_expert(m, e);
    }
  f.verify_all();
  const MatView q = f.tensor("model.layers.1.self_attn.q_proj");
  CHECK(q.dtype == DType::kQ8);
  CHECK(q.rows == f.config().q_dim());
  CHECK(f.tensor("no.such.tensor").empty());
  auto tok = f.tokenizer_blob();
  REQUIRE(tok);
  CHECK(tok->kind == "gguf-vocab");
  CHECK(tok->bytes.find("<|im_end|>") != std::string::npos);
}

TEST_CASE("packed file: a truncated file is rejected with the section named") {
  test::TempDir tmp;
  const std::string path = make_tiny(tmp);
  const std::string bytes = read_all(path);
  for (size_t keep : {size_t(10), size_t(100), bytes.size() / 2, bytes.size() - 1}) {
    write_all(tmp.file("cut.cst"), bytes.substr(0, keep));
    const std::string e = error_of([&] { PackedFile f(tmp.file("cut.cst")); });
    CAPTURE(keep);
    CHECK(e.find("cut.cst") != std::string::npos);
    CHECK((e.find("truncated") != std::string::npos || e.find("outside") != std::string::npos));
  }
}

TEST_CASE("packed file: a flipped byte in an expert names the layer and the expert") {
  test::TempDir tmp;
  const std::string path = make_tiny(tmp);
  size_t offset = 0;
  {
    PackedFile f(path);
    offset = f.expert_offset(1, 5) + 100;  // layer 1, expert 5
  }
  std::string bytes = read_all(path);
  bytes[offset] = char(bytes[offset] ^ 0x10);
  write_all(path, bytes);
  PackedFile f(path);  // the header is intact: opening works
  const std::string e = error_of([&] { f.verify_all(); });
  CHECK(e.find("layer 1 expert 5") != std::string::npos);
  CHECK(e.find("checksum") != std::string::npos);
  // The runtime checks a blob the first time it uses it.
  auto model = Model::load(path);
  CHECK(error_of([&] { model->experts().host_view(1, 5); }).find("layer 1 expert 5") !=
        std::string::npos);
  CHECK(model->experts().host_view(1, 4).present());
}

TEST_CASE("packed file: a corrupt header field is named") {
  test::TempDir tmp;
  const std::string path = make_tiny(tmp);
  const std::string bytes = read_all(path);
  auto with = [&](const std::string& from, const std::string& to) {
    std::string b = bytes;
    const size_t at = b.find(from);
    REQUIRE(at != std::string::npos);
    REQUIRE(to.size() == from.size());
    b.replace(at, from.size(), to);
    write_all(tmp.file("bad.cst"), b);
    return error_of([&] { PackedFile f(tmp.file("bad.cst")); });
  };
  CHECK(with("\"blob_bytes\":", "\"blob_bytez\":").find("experts.blob_bytes") != std::string::npos);
  CHECK(with("\"format\":\"q4/32\"", "\"format\":\"q5/32\"").find("not a known tensor format") !=
        std::string::npos);
  CHECK(with("CSTPACK", "CSTPACX").find("bad magic") != std::string::npos);
  CHECK(with("\"hidden_size\":256", "\"hidden_size\":128").find("config implies") !=
        std::string::npos);
}

TEST_CASE("packed file: loads and runs, identical to the same weights loaded from its views") {
  test::TempDir tmp;
  auto model = Model::load(make_tiny(tmp));
  REQUIRE(model->packed_file() != nullptr);
  auto backend = make_cpu_reference_backend();
  Session s(*model, *backend);
  const std::vector<int32_t> ids = {1, 2, 3, 500, 7};
  const std::vector<float> logits = s.eval_all(ids);
  for (float x : logits) REQUIRE(std::isfinite(x));
  // An expert view dequantizes to what the blob holds.
  const ExpertWeights w = model->experts().host_view(0, 3);
  CHECK(w.gate.dtype == DType::kQ4);
  CHECK(w.down.rows == model->config().hidden_size);
}
