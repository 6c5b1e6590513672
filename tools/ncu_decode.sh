#!/usr/bin/env bash
# Nsight Compute over the decode micro-benchmarks of `coldstream bench`, one at a time, so each
# profile is the kernel asked for (issue 5). Run on the GPU host from the repository root after
# a build; writes $OUT/ncu-NAME.txt and prints duration, DRAM throughput, warps per scheduler and
# issue use of each kernel.
#   tools/ncu_decode.sh [--bin DIR] [NAME...]   (default: moe-30b moe-235b dense-qkv dense-o
#                                                dense-qkv-q8-235b dense-o-q8-235b lm-head-q4)
# Kernels run alone with caches flushed (ncu's defaults), so durations are longer than inside the
# benchmark's CUDA graphs; compare kernels with each other, not with `coldstream bench`.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-ncu-out}
cs=build/apps/coldstream
if [[ ${1:-} == --bin ]]; then cs=$2/coldstream; shift 2; fi
names=("$@")
[[ ${#names[@]} -eq 0 ]] &&
  names=(moe-30b moe-235b dense-qkv dense-o dense-qkv-q8-235b dense-o-q8-235b lm-head-q4)
mkdir -p "$out"
sections=(--section SpeedOfLight --section LaunchStats --section Occupancy
  --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis
  --section ComputeWorkloadAnalysis)
for n in "${names[@]}"; do
  # Skip the warm-up launches of the stream timing; 4 profiled launches of each kernel name.
  timeout 300 ncu -k regex:'gemv_kernel|moe_down|moe_combine' --launch-skip 8 --launch-count 4 \
    "${sections[@]}" "$cs" bench --no-model --reps 3 --kernels "$n" >"$out/ncu-$n.txt" 2>&1
  echo "== $n (rc=$?)"
  grep -E '^  [a-zA-Z_].*(gemv_kernel|moe_down|moe_combine)|Duration|DRAM Throughput|Active Warps Per Scheduler|Issue Slots Busy|Registers Per Thread|Grid Size' \
    "$out/ncu-$n.txt" | sed -E 's/ {2,}/ /g' | head -28
done
