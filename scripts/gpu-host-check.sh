#!/usr/bin/env bash
# One session on a GPU host: the gpu tests through CTest, compute-sanitizer (memcheck) on the op
# tests, and `coldstream bench`. Logs and bench.json go to $OUT (default ./out).
#
#   BUILD=build scripts/gpu-host-check.sh [tests] [memcheck] [racecheck] [bench] [BENCH ARGS...]
#
# Uses an existing build in $BUILD when its binaries run here, else configures and builds one
# for sm_90 (the Debian packages from gpu-host-deps.sh via CMAKE_PREFIX_PATH and friends).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/out}
build=${BUILD:-$root/build}
mkdir -p "$out"
steps=()
while (($#)) && [[ $1 =~ ^(tests|memcheck|racecheck|bench)$ ]]; do steps+=("$1"); shift; done
((${#steps[@]})) || steps=(tests memcheck bench)
log() { echo "== $*" | tee -a "$out/summary.log"; }
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv | tee -a "$out/summary.log"
if ! "$build/tests/gpu/gpu_tests" --version >/dev/null 2>&1; then
  "$build/tests/gpu/gpu_tests" --version 2>&1 | tail -3 | tee -a "$out/summary.log"
  build=$root/build-gpu-host
  log "the binaries in \$BUILD do not run here; building $build"
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCS_CUDA_ARCHITECTURES=90 \
    >"$out/configure.log" 2>&1 && cmake --build "$build" -j"$(nproc)" >"$out/build.log" 2>&1 ||
    { log "build failed"; tail -50 "$out/build.log"; exit 1; }
fi
for s in "${steps[@]}"; do
  case $s in
    tests)
      log "ctest -L gpu"
      (cd "$build" && timeout 150 ctest -L gpu --output-on-failure --timeout 100) >"$out/ctest_gpu.log" 2>&1
      log "ctest exit $?"; tail -15 "$out/ctest_gpu.log" | tee -a "$out/summary.log" ;;
    memcheck)
      log "compute-sanitizer memcheck, op tests"
      timeout 90 compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 \
        "$build/tests/gpu/gpu_tests" --test-suite=ops >"$out/memcheck.log" 2>&1
      log "memcheck exit $?"; tail -6 "$out/memcheck.log" | tee -a "$out/summary.log" ;;
    racecheck)
      log "compute-sanitizer racecheck, attention and MoE tests"
      timeout 60 compute-sanitizer --tool racecheck --error-exitcode 9 \
        "$build/tests/gpu/gpu_tests" --test-suite=ops --test-case='*attention*,*moe*' \
        >"$out/racecheck.log" 2>&1
      log "racecheck exit $?"; tail -6 "$out/racecheck.log" | tee -a "$out/summary.log" ;;
    bench)
      log "coldstream bench $*"
      timeout 150 "$build/apps/coldstream" bench --json "$out/bench.json" "$@" >"$out/bench.log" 2>&1
      log "bench exit $?"; cat "$out/bench.log" | tee -a "$out/summary.log" ;;
  esac
done
