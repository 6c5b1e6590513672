// The public header compiles as C++ with every warning an error (tests/capi/CMakeLists.txt).
#include <coldstream.h>

int cs_header_check();
int cs_header_check() {
  cs_model_params p = cs_model_default_params();
  cs_stats s{};
  s.size = sizeof s;
  return int(p.size + s.size) + CS_VERSION_MAJOR + int(CS_ERR_CONTEXT_FULL);
}
