// Bad model directories and bad requests give errors that name the file and what was wrong.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "kernels/backend.h"
#include "runtime/engine/session.h"
#include "tests/common/fixtures.h"

using namespace cs;
namespace fs = std::filesystem;

namespace {

// A copy of a fixture directory that a test may damage.
std::string copy_fixture(const test::TempDir& tmp, const std::string& name) {
  const std::string dst = tmp.file(name);
  fs::copy(test::fixture(name), dst, fs::copy_options::recursive);
  return dst;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

// Rewrites one safetensors file with a tensor renamed, reshaped or retyped in the header only.
void edit_safetensors_header(const std::string& path,
                             const std::function<void(nlohmann::json&)>& edit) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  nlohmann::json h = nlohmann::json::parse(bytes.substr(8, n));
  edit(h);
  std::string header = h.dump();
  header.resize(((header.size() + 7) / 8) * 8, ' ');
  const uint64_t m = header.size();
  std::string out(reinterpret_cast<const char*>(&m), 8);
  out += header;
  out += bytes.substr(8 + n);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << out;
}

std::string load_error(const std::string& dir) {
  try {
    Model::load(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("missing or malformed config.json names the file") {
  test::TempDir tmp;
  const std::string dir = copy_fixture(tmp, "qwen3moe");
  fs::remove(dir + "/config.json");
  CHECK(load_error(dir).find("config.json") != std::string::npos);
  write_text(dir + "/config.json", "{ \"model_type\": \"qwen3_moe\", ");
  const std::string e = load_error(dir);
  CHECK(e.find("config.json") != std::string::npos);
  CHECK(e.find("malformed JSON") != std::string::npos);
}

TEST_CASE("a missing config field and a wrong field type are named") {
  test::TempDir tmp;
  const std::string dir = copy_fixture(tmp, "qwen3moe");
  nlohmann::json c = read_json(dir + "/config.json");
  c.erase("hidden_size");
  write_text(dir + "/config.json", c.dump());
  CHECK(load_error(dir).find("hidden_size") != std::string::npos);
  c["hidden_size"] = "sixty-four";
  write_text(dir + "/config.json", c.dump());
  CHECK(load_error(dir).find("hidden_size") != std::string::npos);
}

TEST_CASE("an unknown architecture is named") {
  test::TempDir tmp;
  const std::string dir = copy_fixture(tmp, "qwen3moe");
  nlohmann::json c = read_json(dir + "/config.json");
  c["model_type"] = "llama4";
  write_text(dir + "/config.json", c.dump());
  const std::string e = load_error(dir);
  CHECK(e.find("llama4") != std::string::npos);
  CHECK(e.find("not supported") != std::string::npos);
}

TEST_CASE("a missing tensor is named") {
  test::TempDir tmp;
  const std::string dir = copy_fixture(tmp, "qwen3moe");
  edit_safetensors_header(dir + "/model.safetensors", [](nlohmann::json& h) {
    h["renamed.tensor"] = h["model.layers.1.self_attn.k_norm.weight"];
    h.erase("model.layers.1.self_attn.k_norm.weight");
  });
  const std::string e = load_error(dir);
  CHECK(e.find("model.layers.1.self_attn.k_norm.weight") != std::string::npos);
  CHECK(e.find("missing tensor") != std::string::npos);
}

TEST_CASE("a tensor of the wrong shape or dtype is named with what was expected") {
  test::TempDir tmp;
  const std::string dir = copy_fixture(tmp, "qwen3moe");
  edit_safetensors_header(dir + "/model.safetensors", [](nlohmann::json& h) {
    auto& t = h["model.layers.0.self_attn.q_proj.weight"];  // [128, 64] F32
    t["shape"] = {64, 128};
  });
  std::string e = load_error(dir);
  CHECK(e.find("q_proj") != std::string::npos);
  CHECK(e.find("[128, 64]") != std::string::npos);
  fs::remove_all(dir);
  copy_fixture(tmp, "qwen3moe");
  edit_safetensors_header(dir + "/model.safetensors", [](nlohmann::json& h) {
    auto& t = h["model.norm.weight"];  // [64] F32 -> [64] I32, same byte count
    t["dtype"] = "I32";
  });
  e = load_error(dir);
  CHECK(e.find("model.norm.weight") != std::string::npos);
  CHECK(e.find("I32") != std::string::npos);
}

TEST_CASE("a truncated safetensors file is reported, not read past its end") {
  test::TempDir tmp;
  const std::string dir = copy_fixture(tmp, "mixtral");
  const std::string shard = dir + "/model-00002-of-00002.safetensors";
  fs::resize_file(shard, fs::file_size(shard) - 1000);
  std::string e = load_error(dir);
  CHECK(e.find("model-00002-of-00002.safetensors") != std::string::npos);
  CHECK(e.find("truncated") != std::string::npos);
  fs::resize_file(shard, 5);
  e = load_error(dir);
  CHECK(e.find("truncated") != std::string::npos);
}

TEST_CASE("a token outside the vocabulary and a prompt longer than the context are refused") {
  auto model = Model::load(test::fixture("qwen3moe"));
  auto backend = make_cpu_reference_backend();
  SessionOptions opt;
  opt.transformer.n_ctx = 16;
  Session s(*model, *backend, opt);
  const std::vector<int32_t> bad = {1, 2, 512};
  CHECK_THROWS_WITH_AS(s.eval(bad), doctest::Contains("outside the vocabulary"), Error);
  const std::vector<int32_t> negative = {-1};
  CHECK_THROWS_AS(s.eval(negative), Error);
  CHECK(s.n_past() == 0);  // nothing was added by the failed calls
  const std::vector<int32_t> long_prompt(17, 3);
  CHECK_THROWS_WITH_AS(s.eval(long_prompt), doctest::Contains("longer than the context of 16"),
                       Error);
  const std::vector<int32_t> fits(16, 3);
  CHECK_NOTHROW(s.eval(fits));
  const std::vector<int32_t> one = {3};
  CHECK_THROWS_WITH_AS(s.eval(one), doctest::Contains("context"), Error);
}
