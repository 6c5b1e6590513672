// Fuzz entry points, one per parser of untrusted files. Each returns 0 and throws only cs::Error
// for bad input; anything else (a crash, a sanitizer report, another exception) is a bug.
// Built as libFuzzer binaries with -DCS_FUZZ=ON (clang) and, always, into the corpus replay test.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cs::fuzz {

int safetensors(const uint8_t* data, size_t size);
int gguf(const uint8_t* data, size_t size);
int packed(const uint8_t* data, size_t size);

}  // namespace cs::fuzz
