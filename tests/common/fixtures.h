// Test helpers: where the fixtures are and how to read their reference outputs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/format/safetensors.h"

namespace cs::test {

// tests/fixtures in the source tree.
std::string fixture_dir();
std::string fixture(const std::string& name);  // fixture_dir() + "/" + name

// Data fetched by scripts/fetch-test-data.sh: $CS_TESTDATA_DIR, else build/testdata.
std::string testdata_dir();
// The real Qwen3 tokenizer directory (tokenizer.json, tokenizer_config.json). Fails the calling
// test with instructions when it has not been fetched.
std::string qwen3_tokenizer_dir();

// Reference outputs made by tools/make_fixtures.py with Hugging Face transformers.
class Reference {
 public:
  explicit Reference(const std::string& model_name);
  std::vector<int32_t> ints(const std::string& name) const;
  std::vector<float> floats(const std::string& name) const;
  std::vector<int64_t> shape(const std::string& name) const;
  bool has(const std::string& name) const;

 private:
  SafetensorsFile file_;
};

// A scratch directory removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// max |a - b| / max |b|, the relative error used by the model tests.
double max_rel_error(const float* a, const float* b, size_t n);

}  // namespace cs::test

namespace cs::test {

// Writes a copy of a Hugging Face fixture directory with every F32 tensor converted to `dtype`
// ("F16" or "BF16"), for tests of half-precision checkpoints.
void write_converted_copy(const std::string& src_dir, const std::string& dst_dir,
                          const std::string& dtype);

}  // namespace cs::test
