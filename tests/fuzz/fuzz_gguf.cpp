#include <vector>

#include "common/error.h"
#include "runtime/format/gguf.h"
#include "runtime/format/gguf_quants.h"
#include "tests/fuzz/fuzz_targets.h"

namespace cs::fuzz {

int gguf(const uint8_t* data, size_t size) {
  try {
    const GgufContents g = GgufFile::parse(data, size, "fuzz.gguf");
    std::vector<float> row;
    for (const auto& [name, t] : g.tensors) {
      if (!t.data) continue;
      // Dequantize the first row: block math over bytes the parser vouched for.
      row.resize(size_t(t.dims[0]));
      if (gguf_row_bytes(t.type, t.dims[0]) <= t.bytes)
        gguf_dequantize(t.type, t.data, t.dims[0], row.data());
    }
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace cs::fuzz

#ifdef CS_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return cs::fuzz::gguf(data, size);
}
#endif
