// make_chat_model DIR: writes the test chat model (tests/common/chat_model.h) into DIR, for the
// shell tests of `coldstream chat`.
#include <cstdio>
#include <exception>

#include "tests/common/chat_model.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_chat_model DIR\n");
    return 2;
  }
  try {
    cs::test::make_chat_model(argv[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_chat_model: %s\n", e.what());
    return 1;
  }
  return 0;
}
