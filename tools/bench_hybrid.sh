#!/usr/bin/env bash
# The hybrid offload benchmarks (issue 7) and the offload-engine figures (issue 6) that fit one
# 10-minute run on the GPU machine, on `coldstream synth` models (random weights, real shapes).
# Results go to $OUT (default: bench-out/): one text and one JSON file per step, the stderr logs,
# and summary.txt with the card, the commit, the date and the lines that matter.
#
#   tools/bench_hybrid.sh [--bin DIR] [--scratch DIR] [--commit SHA] [STEP...]
#
# Steps (default: test modes prefill nvme; modes alone takes about 6 minutes):
#   test      offload_gpu_tests (CUDA copy engine, pinning, VRAM budget, the offload modes on the
#             CUDA backend against stream), then gpu_tests
#   modes     S235 (Qwen3-235B-A22B shape, 20 layers), VRAM budget 5 GiB, every expert in RAM:
#             bench-offload --modes hybrid,cpu,stream --rounds 3 (prefill 256, prompt 32, 48
#             tokens; the three modes in turn, three times: the host's DRAM rate drifts between
#             runs, so each mode's median is compared)
#   prefill   S235 prefill of 2048 tokens in modes stream and hybrid, against the PCIe bound
#   nvme      S235-nvme: 13 GiB of host RAM for 27 GB of experts; the NVMe tier's read rate
#             against raw O_DIRECT reads of the same file; decode in modes hybrid and stream
#   ablation  S30 shape cut to 12 layers, VRAM budget 3 GiB, stream mode: cache {none, LRU,
#             router_freq} x prefetch {none, lookahead 1, lookahead 2}, uniform and skewed routing
#   prefetch  S235 decode (no prefill), the three modes in 3 rounds with the default predictor and
#             again with --predictor none (`tune` ranks hybrid without prefetch first; two single
#             runs on the H200 could not tell, docs/PERF.md session 17); about 8 minutes
#   timing    S235 decode (no prefill), the three modes in 3 rounds with the default feedback and
#             again with offload.device_timing=true (the copy channel timed on the GPU, copies and
#             the copied experts' kernel: docs/PERF.md session 19); about 8 minutes
#   twin      S235's GGUF twin (what llama.cpp reads: Q4_0 experts, Q8_0 attention), converted
#             back with `coldstream convert` and decoded in the three modes, for the comparison
#             with llama.cpp's --n-cpu-moe on the same weights; needs ~60 GB of scratch disk and
#             removes s235.cst for it: run it alone or last
# Options:
#   --bin DIR      directory holding coldstream, offload_gpu_tests and gpu_tests (default: the
#                  build tree's places)
#   --scratch DIR  where the synthetic models are written (default /tmp/coldstream-bench)
#   --commit SHA   recorded in summary.txt when the tree is not a git checkout
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench-out}
scratch=/tmp/coldstream-bench
bindir=""
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
steps=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --bin) bindir=$2; shift 2 ;;
    --scratch) scratch=$2; shift 2 ;;
    --commit) commit=$2; shift 2 ;;
    test|modes|prefill|nvme|ablation|prefetch|timing|twin) steps+=("$1"); shift ;;
    *) echo "bench_hybrid.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ ${#steps[@]} -eq 0 ]] && steps=(test modes prefill nvme)
mkdir -p "$out" "$scratch"
if [[ -n $bindir ]]; then
  cs=$bindir/coldstream; ogt=$bindir/offload_gpu_tests; gt=$bindir/gpu_tests
else
  cs=build/apps/coldstream; ogt=build/tests/gpu/offload/offload_gpu_tests; gt=build/tests/gpu/gpu_tests
fi
log() { echo "== $(date -u +%T) $*" | tee -a "$out/summary.txt"; }
{ date -u +%FT%TZ; echo "commit $commit"
  nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv,noheader || true
  echo "cores: $(nproc)"; grep -m1 'model name' /proc/cpuinfo || true
  grep -o -m1 'avx512_vnni\|avx512f' /proc/cpuinfo | head -1 || true
  free -g | head -2; df -h "$scratch" | tail -1; } >>"$out/summary.txt" 2>&1

synth() {  # synth NAME ARGS...: $scratch/NAME.cst once
  local name=$1; shift
  [[ -f $scratch/$name.cst ]] && return 0
  log "synth $name: $*"
  local t0=$SECONDS
  "$cs" synth "$@" --probe-tokens 0 --out "$scratch/$name.cst" 2>&1 | tail -2 | tee -a "$out/summary.txt"
  echo "synth $name: $((SECONDS - t0)) s" | tee -a "$out/summary.txt"
}
scenario() {  # scenario NAME ARGS...: bench-offload, text + JSON + stderr; 240 s per round
  local name=$1; shift
  local rounds=1 prev=""
  for arg in "$@"; do [[ $prev == --rounds ]] && rounds=$arg; prev=$arg; done
  log "$name: bench-offload $*"
  timeout $((240 * rounds)) "$cs" bench-offload --json "$out/$name.json" "$@" 2>"$out/$name.err" | tee "$out/$name.txt"
  grep -E "^channels|^mode|hybrid vs|^cache|^configured| decode split|^== round" "$out/$name.txt" >>"$out/summary.txt"
  grep -E "warm-up|expert slots|slots of" "$out/$name.err" >>"$out/summary.txt"
}
quick=(--prefill 256 --prompt 32 --generate 48)

for step in "${steps[@]}"; do
  case $step in
    test)
      log "offload_gpu_tests"
      timeout 120 "$ogt" 2>&1 | tail -40 >"$out/test-offload-gpu.txt"
      grep -E "worst relative|test cases|Status|ERROR" "$out/test-offload-gpu.txt" | tee -a "$out/summary.txt"
      log "gpu_tests"
      timeout 120 "$gt" 2>&1 | tail -15 >"$out/test-gpu.txt"
      grep -E "test cases|Status" "$out/test-gpu.txt" | tee -a "$out/summary.txt" ;;
    modes)
      synth s235 --shape qwen3-235b-a22b --layers 20
      scenario s235-modes --model "$scratch/s235.cst" --vram-budget 5GiB --modes hybrid,cpu,stream \
        --rounds 3 "${quick[@]}" ;;
    prefill)
      synth s235 --shape qwen3-235b-a22b --layers 20
      scenario s235-prefill --model "$scratch/s235.cst" --vram-budget 5GiB --modes stream,hybrid --prefill 2048 --generate 0 ;;
    nvme)
      synth s235 --shape qwen3-235b-a22b --layers 20
      # 20 layers x 128 experts of ~10.6 MB = 27 GB; 13 GiB of them in RAM.
      scenario s235-nvme --model "$scratch/s235.cst" --vram-budget 5GiB --host-budget 13GiB --horizon 2 --modes hybrid,stream "${quick[@]}" ;;
    prefetch)
      synth s235 --shape qwen3-235b-a22b --layers 20
      for p in lookahead none; do
        scenario s235-decode-predictor-$p --model "$scratch/s235.cst" --vram-budget 5GiB \
          --modes hybrid,cpu,stream --rounds 3 --prefill 0 --prompt 32 --generate 48 --predictor $p
      done ;;
    timing)
      synth s235 --shape qwen3-235b-a22b --layers 20
      for t in false true; do
        scenario s235-decode-device-timing-$t --model "$scratch/s235.cst" --vram-budget 5GiB \
          --modes hybrid,cpu,stream --rounds 3 --prefill 0 --prompt 32 --generate 48 \
          --set offload.device_timing=$t
      done ;;
    twin)
      if [[ ! -f $scratch/s235-twin.cst ]]; then
        rm -f "$scratch/s235.cst"  # room for the GGUF and its conversion (28 GiB each)
        log "synth s235 with its GGUF twin"
        "$cs" synth --shape qwen3-235b-a22b --layers 20 --probe-tokens 0 --quiet \
          --out "$scratch/s235.cst" --gguf "$scratch/s235.gguf" >>"$out/summary.txt" 2>&1
        rm -f "$scratch/s235.cst"
        log "convert the GGUF twin"
        "$cs" convert -q "$scratch/s235.gguf" "$scratch/s235-twin.cst" >>"$out/summary.txt" 2>&1
      fi
      scenario s235-twin --model "$scratch/s235-twin.cst" --vram-budget 5GiB \
        --modes hybrid,cpu,stream --prefill 0 --prompt 32 --generate 48
      echo "llama.cpp on the same file (BENCHMARKS.md): -m $scratch/s235.gguf -ngl 99 --n-cpu-moe 20 -t 16 -fa 1" |
        tee -a "$out/summary.txt" ;;
    ablation)
      synth s30-12 --shape qwen3-30b-a3b --layers 12
      synth s30-12-skewed --shape qwen3-30b-a3b --layers 12 --skew 1.2
      for r in uniform skewed; do
        m=$scratch/s30-12.cst; [[ $r == skewed ]] && m=$scratch/s30-12-skewed.cst
        scenario s30-ablation-$r --model "$m" --vram-budget 3GiB --offload-mode stream --ablation --no-channels --prefill 0 --prompt 32 --generate 32
      done ;;
  esac
done
log "done: results in $out/"
