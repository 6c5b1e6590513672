#!/usr/bin/env bash
# The C API tests under ThreadSanitizer (build-tsan) and AddressSanitizer + UBSan (build-asan),
# CPU only: builds just the capi_tests target in each and runs it. Any report fails the run
# (halt_on_error; LeakSanitizer is on with ASan). Slow on 2 cores: each build compiles the runtime.
#   scripts/sanitize-capi.sh [thread|address]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
run() {  # sanitizer, build dir
  cmake -S . -B "$2" -G Ninja -DCS_CUDA=OFF -DCS_SANITIZE="$1" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCS_BUILD_BENCH=OFF "${launcher[@]}" >/dev/null
  cmake --build "$2" --target capi_tests
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$2/tests/capi/capi_tests"
}
case "${1:-both}" in
  thread) run thread build-tsan ;;
  address) run address,undefined build-asan ;;
  both) run thread build-tsan && run address,undefined build-asan ;;
  *) echo "usage: $0 [thread|address]" >&2; exit 2 ;;
esac
