// The GPU test runner: exits 77 (CTest: not run) with the reason when no GPU is usable, so the
// gpu label costs nothing on machines without one.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string>

#include "kernels/cuda_backend.h"

int main(int argc, char** argv) {
  std::string why;
  if (cs::cuda_device_count(&why) == 0) {
    std::fprintf(stderr, "gpu tests not run: no usable GPU (%s)\n", why.c_str());
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
