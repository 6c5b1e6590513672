#include "common/error.h"
#include "runtime/format/safetensors.h"
#include "tests/fuzz/fuzz_targets.h"

namespace cs::fuzz {

int safetensors(const uint8_t* data, size_t size) {
  try {
    volatile uint8_t sink = 0;
    for (const auto& [name, t] : SafetensorsFile::parse(data, size, "fuzz.safetensors"))
      if (t.bytes) sink = sink ^ t.data[0] ^ t.data[t.bytes - 1];  // ranges must be readable
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace cs::fuzz

#ifdef CS_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return cs::fuzz::safetensors(data, size);
}
#endif
