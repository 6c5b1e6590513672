#include "common/log.h"

#include <cstdio>

namespace cs {

void note(const LogFn& log, const std::string& s) {
  if (log)
    log(s);
  else
    std::fprintf(stderr, "coldstream: %s\n", s.c_str());
}

}  // namespace cs
